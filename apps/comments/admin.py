from django.contrib import admin

from .models import Comment


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["run", "author", "target_kind", "target_id", "created_at", "deleted_at"]
    raw_id_fields = ["run", "author"]
