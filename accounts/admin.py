from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from simple_history.admin import SimpleHistoryAdmin

User = get_user_model()


class UserHistoryAdmin(SimpleHistoryAdmin, UserAdmin):
    """Django's user admin with a History view: who changed a user or their roles, and when."""


admin.site.unregister(User)
admin.site.register(User, UserHistoryAdmin)
