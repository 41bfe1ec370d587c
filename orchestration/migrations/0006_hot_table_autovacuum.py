# Per-table autovacuum for the engine's hot tables (config/autovacuum.py says why):
# every case updates its own row and its step runs, every event is marked published,
# every idempotency key is completed after it is claimed.

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
    dependencies = [("orchestration", "0005_flow_metric_indexes")]

    operations = [
        autovacuum_operation(
            {
                "orchestration_case": HOT_TABLE,
                "orchestration_steprun": HOT_TABLE,
                "orchestration_outboxevent": HOT_TABLE,
                "orchestration_idempotencyrecord": HOT_TABLE,
            }
        )
    ]
