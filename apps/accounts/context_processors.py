from django.conf import settings


def site(request) -> dict:
    return {"signup_enabled": settings.SIGNUP_ENABLED, "profile": settings.PROFILE}
