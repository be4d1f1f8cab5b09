from django.contrib import admin

from .models import Helper, HelperVersion


class HelperVersionInline(admin.TabularInline):
    model = HelperVersion
    extra = 0
    can_delete = False  # runs name the versions they loaded
    readonly_fields = ("version", "signature", "doc", "source", "created_by", "created_at")


@admin.register(Helper)
class HelperAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "active", "created_at")
    list_filter = ("active",)
    search_fields = ("name", "team__name")
    readonly_fields = ("team", "name", "created_at")
    inlines = [HelperVersionInline]

    def has_add_permission(self, request) -> bool:
        return False  # saved through apps.helpers.services, which compiles the source
