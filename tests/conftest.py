"""Shared test configuration."""

import os

import pytest

os.environ.setdefault("NIPYPE_NO_ET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")


@pytest.fixture
def templateflow_offline(monkeypatch):
    """A function pointing TemplateFlow at a directory with the network cut: every download
    attempt is recorded in the list it returns and fails with a ConnectionError (as on an
    offline machine)."""
    return lambda home: _templateflow_offline(home, monkeypatch)


def _templateflow_offline(home, monkeypatch) -> list:
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home))
    monkeypatch.setenv("TEMPLATEFLOW_AUTOUPDATE", "0")
    import requests
    from templateflow import client  # after TEMPLATEFLOW_HOME: its import reads it

    calls = []

    def offline(*args, **kwargs):
        calls.append(args)
        raise requests.exceptions.ConnectionError("offline (test)")

    monkeypatch.setattr(requests, "get", offline)
    monkeypatch.setattr(client, "_datalad_get", offline)
    return calls
