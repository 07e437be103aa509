"""The console in a real browser: Debian's Chromium, driven by Playwright (pointed at the
system browser), against `eoy-reset serve` on 127.0.0.1, on both targets. Each role signs in
through the form, does its main task end to end and sees the result; a screenshot of each
role's main page is kept in tests/artifacts/ (console-<role>-<target>.png).

The tests share one warehouse, console and browser per target and run in order: the district
chooses its date, the CSM sees it, the reviewer approves the plan that `run --plan` then
runs, and the operator watches the runs.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from jobs.warehouse.connection import connect
from tests.conftest import TARGETS
from tests.support.chromium import CHROMIUM, installed
from tests.support.console_helpers import AS_OF, USERS, Site, artifacts, console_site

# Debian's chromium, as the report's test runs it; Playwright's own browser is not used
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 60_000  # a page that records a request rebuilds the reset dates with dbt first


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium (the session began installing it if it was missing); a failed
    install fails the test."""
    problem = installed()
    if problem is not None:
        pytest.fail(problem)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module", params=TARGETS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    yield from console_site(request, tmp_path_factory)


def signed_in(browser: Browser, site: Site, name: str) -> tuple[Page, list[str]]:
    """A new browser context (its own cookies) signed in through the form, and the errors
    its pages raise from then on (none expected: no script, no breach of the content
    security policy)."""
    page = browser.new_context(
        viewport={"width": 1280, "height": 900}, accept_downloads=True
    ).new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # a page answered 4xx is logged as "Failed to load resource"; its status is asserted
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.goto(f"{site.server.url}/districts")
    assert page.url.endswith("/login")
    page.fill("#username", name)
    page.fill("#password", USERS[name][2])
    page.click("#sign-in")
    expect(page.locator("#who")).to_contain_text(name)
    assert not errors, errors
    return page, errors


def screenshot(page: Page, site: Site, role: str) -> None:
    page.screenshot(
        path=str(artifacts() / f"console-{role}-{site.settings.target}.png"), full_page=True
    )


def test_a_district_admin_chooses_its_date_and_downloads_its_copy(
    browser: Browser, site: Site
) -> None:
    page, errors = signed_in(browser, site, "nora")
    assert page.url == f"{site.server.url}/districts/north"
    expect(page.locator("#effective-date")).to_have_text("2023-07-28")
    expect(page.locator("#window")).to_contain_text("2023-06-19")
    expect(page.locator('#tables tr[data-table="students"]')).to_contain_text("2")
    expect(page.locator('#inactive tr[data-educator="north-idle"]')).to_contain_text("never")
    screenshot(page, site, "district_admin")
    # refused with the rule's reason, then a date the rules honour
    page.fill("#date", "2023-06-01")
    page.click("#request-date")
    expect(page.locator("#error")).to_contain_text("before the policy's earliest reset date")
    expect(page.locator("#effective-date")).to_have_text("2023-07-28")
    page.fill("#date", "2023-07-12")
    page.click("#request-date")
    expect(page.locator("#recorded")).to_be_visible()
    expect(page.locator("#effective-date")).to_have_text("2023-07-12")
    expect(page.locator("#source")).to_contain_text("requested")
    expect(page.locator("#history")).to_contain_text("nora")
    with page.expect_download() as download:
        page.click("#copy-csv")
    with zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())) as zf:
        assert len(zf.read("students.csv").decode().splitlines()) == 3
        assert "from the warehouse" in zf.read("README.txt").decode()
    # another district is not there for it
    assert not errors, errors
    response = page.goto(f"{site.server.url}/districts/south")
    assert response is not None and response.status == 404


def test_a_csm_sees_the_chosen_date_and_records_one_anyway(browser: Browser, site: Site) -> None:
    page, errors = signed_in(browser, site, "carla")
    assert page.url == f"{site.server.url}/districts"
    north = page.locator('#districts tr[data-district="north"]')
    expect(north).to_contain_text("2023-07-12")
    expect(north).to_contain_text("requested")
    screenshot(page, site, "csm")
    page.fill("#filter-q", "sou")
    page.click("#filter")
    expect(page.locator("#districts tbody tr")).to_have_count(1)
    page.click('#districts tr[data-district="south"] a')
    page.fill("#date", "2023-06-05")
    page.check("#anyway")
    page.click("#request-date")
    expect(page.locator("#recorded")).to_be_visible()
    expect(page.locator("#issues")).to_contain_text("request_too_early")
    expect(page.locator("#history")).to_contain_text("carla")
    assert not errors, errors
    # the date the district chose is the one the next plan uses
    plan = json.loads(site.cli("plan", "--as-of", AS_OF, "--json").stdout)
    due = {d["district_id"]: d["effective_reset_date"] for d in plan["due"]}
    assert due["north"] == "2023-07-12" and due["south"] == "2023-07-28"
    assert (
        site.query(
            "select effective_reset_date, date_source from eoy.reset_schedule "
            "where district_id = 'north' and school_year = 2023"
        )[0][1]
        == "requested"
    )


def test_a_reviewers_approval_lets_run_plan_run(browser: Browser, site: Site) -> None:
    plan = site.folder / "plan.json"
    made = site.cli("plan", "--as-of", AS_OF, "--out", str(plan), EOY_OPERATOR="olga")
    assert made.returncode == 0, made.stderr
    sha = json.loads(plan.read_text())["plan_sha256"]
    run = ["run", "--as-of", AS_OF, "--plan", str(plan), "--json"]
    two = {"EOY_OPERATOR": "otto", "EOY_REQUIRE_SECOND_PERSON": "1"}
    assert site.cli(*run, **two).returncode != 0  # not approved yet

    page, errors = signed_in(browser, site, "rita")
    card = page.locator(f'section.plan[data-sha256="{sha}"]')
    expect(card).to_contain_text("olga")
    expect(card).to_contain_text("nobody yet")
    card.locator("summary").click()
    expect(card.locator("table")).to_contain_text("north")
    screenshot(page, site, "reviewer")
    card.locator("button.approve").click()
    expect(page.locator("#approved")).to_contain_text(sha[:12])
    expect(page.locator(f'section.plan[data-sha256="{sha}"] .approvers')).to_contain_text("rita")
    assert not errors, errors

    done = site.cli(*run, **two)
    assert done.returncode == 0, done.stderr
    statuses = {d["district_id"]: d["status"] for d in json.loads(done.stdout)["districts"]}
    assert statuses == {"north": "completed", "south": "completed", "evil": "completed"}


def test_an_operator_watches_the_runs_refresh_by_themselves(browser: Browser, site: Site) -> None:
    page, errors = signed_in(browser, site, "otto")
    assert page.url == f"{site.server.url}/runs"
    for district in ("north", "south", "evil"):
        expect(page.locator(f'#runs tr[data-district="{district}"]')).to_have_attribute(
            "data-status", "completed"
        )
    screenshot(page, site, "operator")
    # a run fails meanwhile: the open page shows it without anyone reloading it
    with connect(site.settings) as wh:
        wh.execute(
            "insert into eoy_runner.reset_runs (district_id, school_year, status, started_at, "
            "finished_at, rows_deleted, error) values ('west', 2023, 'failed', "
            "current_timestamp, current_timestamp, 0, 'the snapshot root is full: free space')"
        )
    failed = page.locator('#runs tr[data-district="west"]')
    expect(failed).to_have_attribute("data-status", "failed", timeout=20_000)
    expect(failed.locator(".reason")).to_have_text("the snapshot root is full: free space")
    # and the district sees when its reset happened
    nora, more = signed_in(browser, site, "nora")
    expect(nora.locator("#reset-done")).to_contain_text("was reset on")
    assert not errors and not more, errors + more
