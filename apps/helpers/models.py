from django.conf import settings
from django.db import models


class Helper(models.Model):
    """A team's named Python function, preloaded into the REPL of every run of the team."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="helpers")
    name = models.CharField(max_length=64)
    active = models.BooleanField(default=True, help_text="Inactive helpers are kept (runs name their versions) "
                                                          "but no longer loaded.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="one_helper_name_per_team")]

    def __str__(self) -> str:
        return f"{self.name} ({self.team_id})"

    @property
    def current(self) -> "HelperVersion | None":
        return self.versions.order_by("-version").first()


class HelperVersion(models.Model):
    """One saved source of a helper; never changed once saved (runs record the version they had)."""

    helper = models.ForeignKey(Helper, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    source = models.TextField()
    doc = models.TextField(blank=True, help_text="The function's docstring, as the root model is shown it.")
    signature = models.CharField(max_length=300)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["helper", "-version"]
        constraints = [models.UniqueConstraint(fields=["helper", "version"], name="one_helper_version")]

    def __str__(self) -> str:
        return f"{self.helper.name} v{self.version}"
