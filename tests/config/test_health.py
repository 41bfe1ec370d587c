import pytest

from config.celery import app as celery_app


def test_healthz_answers_without_touching_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ok_when_database_and_broker_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz_names_the_broker_when_it_does_not_answer(client, monkeypatch):
    # Nothing listens on port 1: the connection is refused at once. Celery lets the
    # CELERY_BROKER_URL variable win over its configuration, so both are pointed there.
    dead = "amqp://guest:guest@127.0.0.1:1//"
    # Configuration first: Celery's getter reads the variable, so patching it after the
    # variable would record the dead URL as the value to restore.
    monkeypatch.setattr(celery_app.conf, "broker_url", dead)
    monkeypatch.setenv("CELERY_BROKER_URL", dead)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"] != "ok"


def test_readyz_names_the_database_when_it_cannot_be_queried(client):
    # Without the django_db mark pytest-django refuses every query, as a dead server would.
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]
