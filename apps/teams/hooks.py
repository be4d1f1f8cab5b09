"""What teams announce to the apps above them (which teams never import).

`team_deleting(team, user)`: sent by `services.team_delete` inside its transaction, before the team
row is deleted. A receiver refuses the deletion by raising (a ValidationError: the owner is told
why) or removes what its app keeps for the team. Receivers: apps.runs.receivers (refuses while a
run is queued or running; deletes the runs, which protect their documents) and
apps.documents.receivers (deletes the documents' files once the transaction commits).
"""

from django.dispatch import Signal

team_deleting = Signal()
