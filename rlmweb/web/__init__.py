"""Web plumbing shared by the apps, and importing none of them (except `home`, the start page).

- `errors`: the one error model (`ServiceError` and its kinds) and its translation to HTTP;
- `api`: the JSON API's token authentication, CSRF rule, JSON body parser and query helpers;
- `ratelimit`: per-user rate limits in the Django cache;
- `home`: the start page (it reads documents and runs, so no app imports it).
"""
