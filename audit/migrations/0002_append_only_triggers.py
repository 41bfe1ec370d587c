from django.db import migrations


def install(apps, schema_editor):
    from audit.triggers import install_statements

    for statement in install_statements(schema_editor.connection.vendor):
        schema_editor.execute(statement, params=None)


def remove(apps, schema_editor):
    from audit.triggers import remove_statements

    for statement in remove_statements(schema_editor.connection.vendor):
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install, remove)]
