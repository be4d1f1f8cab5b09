from django.contrib import admin

from .models import ShareLink


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    list_display = ["prefix", "run", "created_by", "created_at", "expires_at", "revoked_at", "view_count"]
    raw_id_fields = ["run", "created_by"]
    readonly_fields = ["token_hash", "prefix", "view_count"]
