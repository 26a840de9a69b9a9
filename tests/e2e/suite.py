"""The e2e tests, written once: test_cluster.py and test_kind.py import them, and pytest runs
them against each module's own ``env`` fixture (an ``scenarios.E2E``) and ``report``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import scenarios as sc

ROOT = Path(__file__).resolve().parents[2]

def test_helm_install_brings_every_pod_ready_and_helm_test_passes(env: sc.E2E, report: sc.Report) -> None:
    sc.install_ready(env, report)


def test_a_deleted_worker_pod_hands_its_tasks_over_without_running_any_twice(
    env: sc.E2E, report: sc.Report
) -> None:
    sc.graceful_delete(env, report)


@pytest.mark.parametrize("how", ["force-delete", "sigkill-from-node"])
def test_a_killed_worker_pods_tasks_are_rerun_by_the_others(env: sc.E2E, report: sc.Report, how: str) -> None:
    sc.killed_worker(env, report, how)


def test_a_poison_message_is_dead_lettered_and_no_worker_pod_restarts(env: sc.E2E, report: sc.Report) -> None:
    sc.poison_message(env, report)


def test_scaling_workers_up_mid_load_spreads_work_and_down_loses_nothing(env: sc.E2E, report: sc.Report) -> None:
    sc.scale_up_down(env, report)


def test_helm_upgrade_rolls_api_and_workers_without_losing_or_refusing_anything(
    env: sc.E2E, report: sc.Report
) -> None:
    sc.rolling_upgrade(env, report)


def test_the_other_kafka_client_takes_over_by_a_rolling_switch_and_hands_tasks_over_too(
    env: sc.E2E, report: sc.Report
) -> None:
    sc.other_client(env, report)


def test_api_redis_and_kafka_pods_recover_by_themselves_and_every_task_finishes(
    env: sc.E2E, report: sc.Report
) -> None:
    sc.backing_restarts(env, report)


def test_the_web_ui_loads_through_the_api_service(env: sc.E2E, tmp_path: Path, report: sc.Report) -> None:
    # No ingress controller can be had here (none builds from the reachable registries in time):
    # the UI is loaded from the API Service, by a browser inside the cluster's network.
    sc.web_ui(env, report, tmp_path, ROOT / ".taskq" / "e2e-ui.png")


def test_every_worker_and_api_pod_serves_metrics_inside_the_cluster(env: sc.E2E, report: sc.Report) -> None:
    sc.pod_metrics(env, report)


def test_each_image_carries_an_sbom_of_exactly_its_hashed_lock(env: sc.E2E, report: sc.Report) -> None:
    sc.image_sbom(env, report, ROOT / "images" / "requirements.txt")


def test_the_ui_and_api_through_the_ingress_with_tls_sign_in_submit_live_and_upgrade(
    env: sc.E2E, tmp_path: Path, report: sc.Report
) -> None:
    sc.through_ingress(env, report, tmp_path, ROOT / ".taskq" / "e2e-ingress.png")
