"""The models offered to users, from settings.RLMWEB_MODELS, and whether each can be used here."""

import os
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ModelChoice:
    model: str
    label: str
    offline: bool = False
    api_key_env: str | None = None
    api_base: str | None = None
    context_window: int | None = None

    @property
    def available(self) -> bool:
        return self.offline or not self.api_key_env or bool(os.environ.get(self.api_key_env))

    @property
    def how_to_enable(self) -> str:
        if self.available:
            return ""
        return f"Set {self.api_key_env} in the environment of the web and worker processes, then restart them."


def model_choices() -> list[ModelChoice]:
    return [
        ModelChoice(
            model=m["model"],
            label=m.get("label", m["model"]),
            offline=bool(m.get("offline")),
            api_key_env=m.get("api_key_env"),
            api_base=m.get("api_base"),
            context_window=m.get("context_window"),
        )
        for m in settings.RLMWEB_MODELS
    ]


def model_choice(model: str) -> ModelChoice | None:
    return next((m for m in model_choices() if m.model == model), None)
