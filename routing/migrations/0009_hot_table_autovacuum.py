# Per-table autovacuum for work items (config/autovacuum.py says why): claims,
# decisions and the SLA sweep rewrite the newest rows of a table that keeps them all.

from django.db import migrations

from config.autovacuum import HOT_TABLE_V1, autovacuum_operation


class Migration(migrations.Migration):
    dependencies = [("routing", "0008_median_per_queue_index")]

    operations = [autovacuum_operation({"routing_workitem": HOT_TABLE_V1})]
