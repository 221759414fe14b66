"""One cluster, one set of services and one operator for the whole session (see operator_stack.py);
each test works in namespaces of its own."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_cluster import kubeconfig  # noqa: F401
from operator_stack import (
    Kubectl,
    NamespaceFactory,
    Operator,
    Services,
    install_chart,
    service_account_kubeconfig,
    services,
)


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path) -> Kubectl:  # noqa: F811
    ctl = Kubectl(kubeconfig)
    install_chart(ctl)
    return ctl


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    with services(tmp_path_factory.mktemp("operator-services")) as running:
        yield running


@pytest.fixture(scope="session")
def operator_kubeconfig(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return service_account_kubeconfig(kubectl, tmp_path_factory.mktemp("operator-sa") / "kubeconfig")


@pytest.fixture(scope="session")
def operator(
    kubectl: Kubectl, stack: Services, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """The operator, running; a test that stops it starts it again before it ends."""
    running = Operator(operator_kubeconfig, stack, tmp_path_factory.mktemp("operator"))
    running.start(kubectl)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[NamespaceFactory]:
    """Make namespaces for this test (labels optional); deleted, with what is in them, at its end."""
    made: list[str] = []

    def make(**labels: str) -> str:
        name = f"t-{secrets.token_hex(4)}"
        kubectl("create", "namespace", name)
        if labels:
            kubectl("label", "namespace", name, *(f"{k}={v}" for k, v in labels.items()))
        made.append(name)
        return name

    yield make
    for name in made:
        kubectl("delete", "namespace", name, "--wait=false", check=False)
