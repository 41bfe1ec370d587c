# Per-table autovacuum for work items (config/autovacuum.py says why): claims,
# decisions and the SLA sweep rewrite the newest rows of a table that keeps them all.

from django.db import migrations

from config.autovacuum import autovacuum_operation

HOT_TABLE = {
    "autovacuum_vacuum_scale_factor": 0.02,
    "autovacuum_vacuum_threshold": 1000,
    "autovacuum_vacuum_insert_scale_factor": 0.05,
    "autovacuum_analyze_scale_factor": 0.02,
    "autovacuum_analyze_threshold": 1000,
}


class Migration(migrations.Migration):
    dependencies = [("routing", "0008_median_per_queue_index")]

    operations = [autovacuum_operation({"routing_workitem": HOT_TABLE})]
