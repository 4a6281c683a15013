"""End to end: a history of builds and tests replayed with a fixed clock and dated git commits,
then every metric of `sqlops report --json` checked against values worked out by hand.

The history (all times UTC; the report runs at 2026-01-20 12:00 with --since 7d, so the period
is 2026-01-13 12:00 to 2026-01-20 12:00):

| run | when         | what                   | code / data change (commit time)                  |
| --- | ------------ | ---------------------- | ------------------------------------------------- |
| 1   | 01-10 09:00  | build prod: D1         | c1 01-10 08:00: the project                       |
| 2   | 01-12 11:00  | build prod: failed     | c2 01-12 10:00: a NULL customer: incident 1 opens |
| 3   | 01-14 10:00  | build prod: D2         | c3 01-14 09:00: fixed; incident 1 closes          |
| 4   | 01-14 12:00  | test prod              |                                                   |
| 5   | 01-15 10:00  | build prod: D3         | c4 01-15 08:00: an order of 1500: big_orders warns|
| 6   | 01-16 07:00  | build dev: dev D1      | c5 01-16 06:00: revenue tier 'bad': tier_ok warns |
| 7   | 01-16 09:00  | build prod: D4         | (reuses what dev built: builds nothing)           |
| 8   | 01-17 12:00  | build prod: D5         | c6 01-17 08:00: 1500 -> 150: big_orders passes    |
| 9   | 01-17 13:00  | test prod              |                                                   |
| 10  | 01-18 09:00  | build prod: D6         | c7 01-18 08:00: an order of 2000; tier fixed      |
| 11  | 01-19 10:00  | build prod: D7, dirty  | 2000 -> 2001, not committed                       |
| 12  | 01-20 09:00  | build prod: failed     | c8 01-20 08:00: a NULL customer: incident 2 opens |
| 13  | 01-20 10:00  | build dev: failed      | (the same code): a dev incident opens             |
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Shop, write_project

NOW = "2026-01-20T12:00:00"

ORDERS = """SELECT order_id, customer_id, amount FROM raw.orders

-- @assert unique(order_id)
-- @assert not_null(order_id, customer_id)
-- @warn big_orders: amount < 1000
"""
REVENUE = """SELECT customer_id, sum(amount) AS revenue, {tier} AS tier
FROM staging.orders
GROUP BY customer_id

-- @assert revenue >= 0
-- @warn tier_ok: tier = 'ok'
"""
PLAIN = "SELECT DISTINCT customer_id FROM staging.orders\n"
SEED = "order_id,customer_id,amount\n"


def git(root: Path, *args: str, when: str | None = None) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ann Analyst",
        "GIT_AUTHOR_EMAIL": "ann@example.com",
        "GIT_COMMITTER_NAME": "Ann Analyst",
        "GIT_COMMITTER_EMAIL": "ann@example.com",
    }
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"{when} +0000"
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def commit(shop: Shop, when: str) -> None:
    git(shop.root, "add", "-A")
    git(shop.root, "commit", "-q", "-m", f"change of {when}", when=when)


def run_at(shop: Shop, when: str, *args: str, code: int = 0) -> None:
    result = shop.sqlops(*args, env={"SQLOPS_NOW": when})
    assert result.code == code, result.output


def orders(*rows: str) -> str:
    return SEED + "".join(f"{r}\n" for r in rows)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """The history above, built once for the tests of this file."""
    shop = write_project(
        tmp_path_factory.mktemp("report") / "proj",
        {
            ".gitignore": "*.duckdb\n*.duckdb.wal\n",
            "seeds/raw/orders.csv": orders("1,1,10", "2,1,20", "3,2,30"),
            "models/staging/orders.sql": ORDERS,
            "models/marts/revenue.sql": REVENUE.format(tier="'ok'"),
            "models/marts/plain.sql": PLAIN,
        },
    )
    git(shop.root, "init", "-q")
    seed = "seeds/raw/orders.csv"
    revenue = "models/marts/revenue.sql"

    commit(shop, "2026-01-10 08:00:00")  # c1
    run_at(shop, "2026-01-10T09:00:00", "build")  # run 1
    shop.write(seed, orders("1,1,10", "2,1,20", "3,2,30", "4,,40"))
    commit(shop, "2026-01-12 10:00:00")  # c2
    run_at(shop, "2026-01-12T11:00:00", "build", code=1)  # run 2: not_null fails
    shop.write(seed, orders("1,1,10", "2,1,20", "3,2,30", "4,2,40"))
    commit(shop, "2026-01-14 09:00:00")  # c3
    run_at(shop, "2026-01-14T10:00:00", "build")  # run 3
    run_at(shop, "2026-01-14T12:00:00", "test")  # run 4
    shop.write(seed, orders("1,1,10", "2,1,20", "3,2,30", "4,2,40", "5,1,1500"))
    commit(shop, "2026-01-15 08:00:00")  # c4
    run_at(shop, "2026-01-15T10:00:00", "build")  # run 5: big_orders warns
    shop.write(revenue, REVENUE.format(tier="'bad'"))
    commit(shop, "2026-01-16 06:00:00")  # c5
    run_at(shop, "2026-01-16T07:00:00", "build", "--env", "dev")  # run 6
    run_at(shop, "2026-01-16T09:00:00", "build")  # run 7: promotes what dev built
    shop.write(seed, orders("1,1,10", "2,1,20", "3,2,30", "4,2,40", "5,1,150"))
    commit(shop, "2026-01-17 08:00:00")  # c6
    run_at(shop, "2026-01-17T12:00:00", "build")  # run 8
    run_at(shop, "2026-01-17T13:00:00", "test")  # run 9
    shop.write(seed, orders("1,1,10", "2,1,20", "3,2,30", "4,2,40", "5,1,150", "6,2,2000"))
    shop.write(revenue, REVENUE.format(tier="lower('OK')"))
    commit(shop, "2026-01-18 08:00:00")  # c7
    run_at(shop, "2026-01-18T09:00:00", "build")  # run 10
    shop.write(seed, orders("1,1,10", "2,1,20", "3,2,30", "4,2,40", "5,1,150", "6,2,2001"))
    run_at(shop, "2026-01-19T10:00:00", "build")  # run 11: from a dirty working tree
    shop.write(seed, orders("1,1,10", "2,1,20", "3,2,30", "4,2,40", "5,1,150", "6,2,2001", "7,,70"))
    commit(shop, "2026-01-20 08:00:00")  # c8
    run_at(shop, "2026-01-20T09:00:00", "build", code=1)  # run 12
    run_at(shop, "2026-01-20T10:00:00", "build", "--env", "dev", code=1)  # run 13
    return shop


def report(shop: Shop, *args: str) -> dict[str, Any]:
    result = shop.sqlops("report", "--since", "7d", "--json", *args, env={"SQLOPS_NOW": NOW})
    assert result.code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def nearest_rank(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(percent / 100 * len(ordered)) - 1]


def test_history_is_what_the_scenario_says(history: Shop) -> None:
    """The recorded history the metrics below are computed from."""
    runs = history.query(
        "SELECT id, command, env, outcome, deployment_id FROM sqlops_meta.runs ORDER BY id"
    )
    assert runs == [
        (1, "build", "prod", "success", 1),
        (2, "build", "prod", "failed", None),
        (3, "build", "prod", "success", 2),
        (4, "test", "prod", "success", None),
        (5, "build", "prod", "success", 3),
        (6, "build", "dev", "success", 4),
        (7, "build", "prod", "success", 5),
        (8, "build", "prod", "success", 6),
        (9, "test", "prod", "success", None),
        (10, "build", "prod", "success", 7),
        (11, "build", "prod", "success", 8),
        (12, "build", "prod", "failed", None),
        (13, "build", "dev", "failed", None),
    ]
    # run 7 built nothing: what dev built was promoted as it was
    assert history.query(
        "SELECT count(*) FROM sqlops_meta.node_results WHERE run_id = 7 AND status = 'built'"
    ) == [(0,)]
    commits = history.query("SELECT id, git_commit FROM sqlops_meta.deployments ORDER BY id")
    assert [c.endswith("-dirty") for _, c in commits] == [False] * 7 + [True]
    incidents = history.query(
        "SELECT id, env, node, opened_run, closed_run FROM sqlops_meta.incidents ORDER BY id"
    )
    assert incidents == [
        (1, "prod", "staging.orders", 2, 3),
        (2, "prod", "staging.orders", 12, None),
        (3, "dev", "staging.orders", 13, None),
    ]


def test_report_metrics_of_prod(history: Shop) -> None:
    data = report(history)
    assert data["env"] == "prod"
    assert data["period"]["since"] == "2026-01-13T12:00:00"
    assert data["period"]["until"] == NOW
    assert data["period"]["days"] == 7

    # runs 3 to 12 of prod, 9 of them (run 6 is dev; 1 and 2 are before the period):
    # all finished, all succeeded but run 12; builds 3 5 7 8 10 11 12, tests 4 9
    runs = data["run_success"]
    assert (runs["runs"], runs["finished"], runs["success"]) == (9, 9, 8)
    assert runs["rate"] == pytest.approx(8 / 9)
    assert runs["by_command"]["build"] == {"runs": 7, "finished": 7, "success": 6, "rate": 6 / 7}
    assert runs["by_command"]["test"] == {"runs": 2, "finished": 2, "success": 2, "rate": 1.0}
    assert runs["by_outcome"] == {"failed": 1, "success": 8}

    # assertion results per run: staging.orders has unique (U), not_null (N), big_orders (B);
    # marts.revenue has revenue >= 0 (R) and tier_ok (T). Runs 3, 4, 5, 8, 9, 10, 11 check all
    # five; run 7 built nothing; run 12 checks U N B (marts.revenue is skipped).
    # Not passing: B in 5, 10, 11, 12 (warn); T in 8, 9 (warn); N in 12 (fail).
    a = data["assertion_failures"]
    assert (a["results"], a["failed"], a["fail"], a["warn"], a["error"]) == (38, 7, 1, 6, 0)
    assert a["rate"] == pytest.approx(7 / 38)
    by_model = [(m["node"], m["results"], m["failed"]) for m in a["by_model"]]
    assert by_model == [("staging.orders", 24, 5), ("marts.revenue", 14, 2)]
    by_check = [(c["node"], c["name"], c["results"], c["failed"]) for c in a["by_check"]]
    assert by_check == [
        ("staging.orders", "big_orders", 8, 4),  # 50%
        ("marts.revenue", "tier_ok", 7, 2),  # 28.6%
        ("staging.orders", "not_null(order_id, customer_id)", 8, 1),  # 12.5%
        ("marts.revenue", "revenue >= 0", 7, 0),
        ("staging.orders", "unique(order_id)", 8, 0),
    ]
    assert a["by_check"][0]["rate"] == 0.5

    # incident 1 (opened 01-12 11:00, before the period; closed 01-14 10:00) and incident 2
    # (opened 01-20 09:00, open) were open during the period; the dev incident is not prod's
    inc = data["incidents"]
    assert (inc["count"], inc["opened"], inc["open_now"]) == (2, 1, 1)
    assert [(i["id"], i["open"]) for i in inc["incidents"]] == [(1, False), (2, True)]
    assert inc["incidents"][0]["hours"] == 47.0  # 01-12 11:00 to 01-14 10:00
    assert inc["incidents"][1]["hours"] == 3.0  # 01-20 09:00 to now, 12:00
    assert "not_null(order_id, customer_id)" in inc["incidents"][1]["reason"]

    # deployments 2 to 7 of prod are in the period: 6 in 7 days
    freq = data["deployment_frequency"]
    assert freq["deployments"] == 6
    assert freq["per_day"] == pytest.approx(6 / 7)
    assert freq["per_week"] == pytest.approx(6.0)

    # commit to deployment: c3 09:00 -> 10:00 (1 h), c4 08:00 -> 10:00 (2 h), c5 06:00 -> 09:00
    # (3 h), c6 08:00 -> 12:00 (4 h), c7 08:00 -> 09:00 (1 h), and the dirty build of c7
    # 01-18 08:00 -> 01-19 10:00 (26 h): median of 1 1 2 3 4 26 is 2.5, mean 37 / 6
    lead = data["lead_time"]
    assert [d["lead_time_hours"] for d in lead["deployments"]] == [1.0, 2.0, 3.0, 4.0, 1.0, 26.0]
    assert (lead["count"], lead["median_hours"]) == (6, 2.5)
    assert lead["mean_hours"] == pytest.approx(37 / 6)
    assert (lead["dirty"], lead["without_commit_time"]) == (1, 0)
    assert all(d["author"] == "Ann Analyst <ann@example.com>" for d in lead["deployments"])

    # attempts: builds 3 5 8 10 11 built something, 7 deployed, 12 failed: 7. Failed: run 12.
    # Incident 2 follows deployment 8 (run 11), but run 12 opened it, and that failed build is
    # counted already: it never touched deployment 8. Incident 1 was opened before deployment
    # 2, so it counts against none of the period's. 1 of 7.
    cfr = data["change_failure_rate"]
    assert cfr["attempt_runs"] == [3, 5, 7, 8, 10, 11, 12]
    assert cfr["failed_runs"] == [12]
    assert cfr["failed_deployments"] == []
    assert (cfr["attempts"], cfr["failed"]) == (7, 1)
    assert cfr["rate"] == pytest.approx(1 / 7)

    # restored in the period: incident 1 after 47 h; incident 2 still open
    ttr = data["time_to_restore"]
    assert (ttr["count"], ttr["median_hours"], ttr["mean_hours"], ttr["still_open"]) == (
        1,
        47.0,
        47.0,
        1,
    )

    # big_orders, in run order 3 4 5 8 9 10 11 12: pass pass warn pass pass warn warn warn,
    # always under the same code: flips 4->5, 5->8, 9->10 = 3, flaky. tier_ok went pass (3, 4,
    # 5) -> warn (8, 9) -> pass (10, 11), but each change came with a code change: 0 flips.
    # not_null flipped once (11 -> 12): not flaky.
    assert data["flaky_assertions"] == [
        {
            "node": "staging.orders",
            "name": "big_orders",
            "check": "amount < 1000",
            "flips": 3,
            "runs": 8,
            "last_outcome": "warn",
        }
    ]

    # staging.orders: 3 of 3 columns named; marts.revenue: revenue and tier of customer_id,
    # revenue, tier; marts.plain: no assertion, customer_id not named. 2 of 3 models, 5 of 7.
    cov = data["coverage"]
    assert (cov["models"], cov["covered_models"], cov["columns"], cov["covered_columns"]) == (
        3,
        2,
        7,
        5,
    )
    assert cov["model_rate"] == pytest.approx(2 / 3)
    assert cov["column_rate"] == pytest.approx(5 / 7)
    assert cov["models_without_assertions"] == ["marts.plain"]
    by_model = {m["node"]: m["uncovered_columns"] for m in cov["by_model"]}
    assert by_model == {
        "marts.plain": ["customer_id"],
        "marts.revenue": ["customer_id"],
        "staging.orders": [],
    }

    # build times: what the prod builds of the period built, from node_results
    durations: dict[str, list[float]] = {}
    for node, seconds in history.query(
        "SELECT n.node, n.duration FROM sqlops_meta.node_results n JOIN sqlops_meta.runs r "
        "ON r.id = n.run_id WHERE r.env = 'prod' AND r.command = 'build' AND r.id >= 3 "
        "AND n.status = 'built'"
    ):
        durations.setdefault(node, []).append(seconds)
    # the seed is built by 3 5 8 10 11 12; the models by 3 5 8 10 11 (12 failed before them)
    assert {n: len(v) for n, v in durations.items()} == {
        "raw.orders": 6,
        "staging.orders": 5,
        "marts.revenue": 5,
        "marts.plain": 5,
    }
    slow = {t["node"]: t for t in data["slowest_models"]}
    assert set(slow) == set(durations)
    for node, values in durations.items():
        assert slow[node]["n"] == len(values)
        assert slow[node]["p50"] == pytest.approx(nearest_rank(values, 50))
        assert slow[node]["p95"] == pytest.approx(nearest_rank(values, 95))
        assert slow[node]["p95"] == max(values)  # rank ceil(0.95 n) = n for n <= 20
    p95s = [t["p95"] for t in data["slowest_models"]]
    assert p95s == sorted(p95s, reverse=True)

    # day by day, 01-13 to 01-20
    days = {d["date"]: d for d in data["trends"]["days"]}
    assert list(days) == [f"2026-01-{d}" for d in range(13, 21)]
    daily = [
        (
            d["runs"],
            d["assertions"],
            d["failed_assertions"],
            d["deployments"],
            d["incidents_opened"],
        )
        for d in days.values()
    ]
    assert daily == [
        ({}, 0, 0, 0, 0),  # 01-13
        ({"success": 2}, 10, 0, 1, 0),  # runs 3, 4
        ({"success": 1}, 5, 1, 1, 0),  # run 5
        ({"success": 1}, 0, 0, 1, 0),  # run 7 (run 6 is dev)
        ({"success": 2}, 10, 2, 1, 0),  # runs 8, 9
        ({"success": 1}, 5, 1, 1, 0),  # run 10
        ({"success": 1}, 5, 1, 1, 0),  # run 11
        ({"failed": 1}, 3, 2, 0, 1),  # run 12
    ]
    assert days["2026-01-16"]["failure_rate"] is None
    assert days["2026-01-17"]["failure_rate"] == 0.2
    assert [p["hours"] for p in data["trends"]["lead_times"]] == [1.0, 2.0, 3.0, 4.0, 1.0, 26.0]


def test_report_metrics_of_dev_and_of_a_date(history: Shop) -> None:
    # dev: run 6 (success, dev deployment 4 of c5, 06:00 -> 07:00) and run 13 (failed, opens
    # incident 3); both attempts; 13 failed; incident 3 is its own, not deployment 4's: 1 of 2
    dev = report(history, "--env", "dev")
    assert dev["run_success"]["rate"] == 0.5
    assert dev["deployment_frequency"]["deployments"] == 1
    assert dev["lead_time"]["median_hours"] == 1.0
    assert dev["change_failure_rate"]["attempt_runs"] == [6, 13]
    assert dev["change_failure_rate"]["failed_deployments"] == []
    assert dev["change_failure_rate"]["rate"] == 0.5
    assert (dev["incidents"]["count"], dev["incidents"]["open_now"]) == (1, 1)
    assert dev["time_to_restore"]["count"] == 0

    # a date: from 01-17 00:00 on, runs 8 9 10 11 12 of prod, deployments 6 7 8 in 3.5 days
    since = report(history, "--since", "2026-01-17")
    assert since["period"]["days"] == 3.5
    assert since["run_success"]["runs"] == 5
    assert since["deployment_frequency"]["per_day"] == pytest.approx(3 / 3.5)
    # big_orders: pass pass warn warn warn in 8 9 10 11 12: one flip, not flaky any more
    assert since["flaky_assertions"] == []
    # incident 1 was closed before 01-17: only incident 2, and nothing restored
    assert since["incidents"]["count"] == 1
    assert since["time_to_restore"]["count"] == 0


def test_report_text_summary(history: Shop) -> None:
    result = history.sqlops("report", "--since", "7d", env={"SQLOPS_NOW": NOW})
    assert result.code == 0, result.output
    out = result.stdout
    assert "2026-01-13 12:00 to 2026-01-20 12:00 UTC (7 days)" in out
    assert "88.9% (8 of 9 finished runs)" in out
    assert "14.3% (1 of 7 change attempts)" in out
    assert "median 2.5 h, mean 6.2 h (6 deployments, 1 from a working tree" in out
    assert "median 47.0 h" in out
    assert "big_orders" in out
    assert "marts.plain" in out  # a model without assertions


# -- the HTML page --------------------------------------------------------------------------------

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# what the page draws its marks in (sqlops/report/html.py), as RGB
SUCCESS, FAILED, DEPLOYED = (0x2E, 0x7D, 0x32), (0xC6, 0x28, 0x28), (0x15, 0x65, 0xC0)
RATE, LEAD = (0xD8, 0x43, 0x15), (0x6A, 0x1B, 0x9A)
# an inline script, added to a copy of the page only: it measures each chart as drawn
MEASURE = """<script>
const found = [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBBox();
  return {chart: svg.dataset.chart, label: svg.getAttribute('aria-label'),
          width: box.width, height: box.height,
          shown: svg.getBoundingClientRect().width,
          marks: svg.querySelectorAll('rect, circle, polyline').length};
});
const pre = document.createElement('pre');
pre.id = 'measured';
pre.textContent = JSON.stringify(found);
document.body.appendChild(pre);
</script>"""


def chromium() -> str:
    """The browser; a test fails without it when SQLOPS_REQUIRE_BROWSER=1 (CI), else skips."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("SQLOPS_REQUIRE_BROWSER") == "1":
        pytest.fail("chromium is not installed, and SQLOPS_REQUIRE_BROWSER=1 requires it")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def headless(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def write_html(shop: Shop, page: Path) -> str:
    result = shop.sqlops("report", "--since", "7d", "--html", str(page), env={"SQLOPS_NOW": NOW})
    assert result.code == 0, result.output
    return page.read_text()


def test_html_report_charts_render_in_a_browser(history: Shop, tmp_path: Path) -> None:
    from PIL import Image

    browser = chromium()
    page = tmp_path / "report.html"
    text = write_html(history, page)
    # self-contained: no network, no script, nothing outside the file
    for outside in ("http://", "https://", "//cdn", "<script", "<link", " src="):
        assert outside not in text.lower(), outside
    assert "Period: 2026-01-13 12:00 to 2026-01-20 12:00 UTC" in text
    assert text.count("<svg") == 5

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    taken = headless(browser, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri())
    assert shot.exists(), taken.stderr
    with Image.open(shot) as image:
        pixels = image.convert("RGB").getcolors(maxcolors=1 << 24) or []

    def painted(color: tuple[int, int, int]) -> int:
        """Pixels of this colour, give or take a little anti-aliasing."""
        return sum(
            n for n, rgb in pixels if max(abs(a - b) for a, b in zip(rgb, color, strict=True)) < 8
        )

    # each legend square is 14 x 14 = 196 pixels: more than that is the chart's own marks
    assert painted(SUCCESS) > 10000  # 8 runs in 6 green bars
    assert painted(DEPLOYED) > 10000  # 6 blue bars
    assert painted(FAILED) > 2000  # the failed run of 01-20
    assert painted(RATE) > 400  # the failure-rate line and its dots
    assert painted(LEAD) > 300  # 6 lead-time dots

    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", MEASURE + "</body>"))
    dom = headless(browser, "--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, flags=re.S)
    assert found, dom[-2000:]
    charts = json.loads(html.unescape(found.group(1)))
    assert [c["chart"] for c in charts] == ["bars", "line", "bars", "points", "spans"]
    for chart in charts:
        # drawn: the marks fill most of the 760 x 290 canvas, and the page shows it whole
        assert chart["width"] > 600 and chart["height"] > 200, chart
        assert chart["shown"] >= 700, chart
    marks = {c["label"]: c["marks"] for c in charts}
    # 8 runs: 7 bars + 2 legend squares; 6 deployments + 1; 6 dots + 1; 2 incidents + 2
    assert marks["Runs per day by outcome"] == 9
    assert marks["Deployments per day"] == 7
    assert marks["Lead time per deployment"] == 7


def test_html_report_escapes_what_the_history_holds(
    make_project: Callable[[dict[str, str]], Shop], tmp_path: Path
) -> None:
    evil = "<script>alert(1)</script>"
    shop = make_project(
        {
            "models/staging/evil.sql": f"-- @description {evil}\n"
            f"SELECT 1 AS id, '{evil}' AS label\n\n"
            f"-- @warn label <> '{evil}'\n"
            "-- @assert label NOT LIKE '%<script>%'\n",
        }
    )
    run_at(shop, "2026-01-19T10:00:00", "build", code=1)  # opens an incident, reason and all
    samples = shop.query("SELECT samples FROM sqlops_meta.assertion_results WHERE outcome = 'fail'")
    assert evil in samples[0][0]
    assert "<script>" in shop.query("SELECT reason FROM sqlops_meta.incidents")[0][0]

    text = write_html(shop, tmp_path / "evil.html")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the check, in the failures
    assert "label NOT LIKE &#x27;%&lt;script&gt;%&#x27;" in text  # the incident's reason


DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
# each metric of `report --json`, and the heading that defines it in docs/metrics.md
DEFINED = {
    "run_success": "Run success rate",
    "assertion_failures": "Assertion failure rate",
    "incidents": "Production incidents",
    "deployment_frequency": "Deployment frequency",
    "lead_time": "Lead time for changes",
    "change_failure_rate": "Change failure rate",
    "time_to_restore": "Time to restore",
    "flaky_assertions": "Flaky assertions",
    "coverage": "Assertion coverage",
    "slowest_models": "Slowest models",
    "trends": "Trends",
}


def test_every_metric_is_defined_in_the_docs(history: Shop) -> None:
    data = report(history)
    assert set(data) - {"env", "period", "generated_at", "notice"} == set(DEFINED)
    text = DOCS.read_text()
    for heading in DEFINED.values():
        assert f"\n### {heading}\n" in text, heading
    for option in ("--since", "--env", "--json", "--html", "--model", "--status", "--limit"):
        assert f"`{option}" in text or f"{option} " in text, option


def test_a_deployment_that_monitoring_then_finds_broken_is_a_failed_change(
    tmp_path: Path,
) -> None:
    import duckdb

    shop = write_project(
        tmp_path / "proj",
        {
            "sources/raw/events.sql": "CREATE TABLE raw.events (amount INTEGER)\n",
            "models/marts/events.sql": "-- @materialized view\nSELECT amount FROM raw.events\n"
            "\n-- @assert amount > 0\n",
        },
    )
    con = duckdb.connect(str(shop.db))
    con.execute("CREATE SCHEMA raw; CREATE TABLE raw.events AS SELECT 5 AS amount")
    con.close()
    run_at(shop, "2026-01-19T08:00:00", "build")  # run 1: deployment 1
    run_at(shop, "2026-01-19T09:00:00", "test")  # run 2: all green
    con = duckdb.connect(str(shop.db))
    con.execute("INSERT INTO raw.events VALUES (-1)")  # bad data reaches the view prod serves
    con.close()
    run_at(shop, "2026-01-19T10:00:00", "test", code=1)  # run 3: opens incident 1
    data = report(shop)
    cfr = data["change_failure_rate"]
    # one attempt, run 1; its deployment was followed by incident 1, which monitoring opened
    assert cfr["attempt_runs"] == [1]
    assert cfr["failed_runs"] == []
    assert cfr["failed_deployments"] == [{"deployment": 1, "incidents": [1]}]
    assert cfr["rate"] == 1.0
    assert data["incidents"]["open_now"] == 1
