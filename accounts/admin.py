from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from simple_history.admin import SimpleHistoryAdmin

from audit.admin_mixins import ChangeReasonAdminMixin

User = get_user_model()


class UserHistoryAdmin(ChangeReasonAdminMixin, SimpleHistoryAdmin, UserAdmin):
    """Django's user admin with a History view and a required reason for every change."""


admin.site.unregister(User)
admin.site.register(User, UserHistoryAdmin)
