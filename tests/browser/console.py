"""Drives serve's web console in Debian's chromium (Playwright for Python), one phase per run.

Run by tests/tests/console_browser.rs, which starts the simulator and serve between phases:
  phase "problem": sign in, screenshot the overview, find the contact, read its timeline, see
                   the field problem.
  phase "fix":     (serve restarted with a text-field mapping and a dead letter waiting) sign in,
                   resync the contact from the problems list, see the problem gone, screenshot
                   the timeline, redrive the dead letter.
  phase "settings": open the settings, pick the webinar, choose an existing tag for Attended,
                   create the missing tag of another state, save, see it saved; screenshot the
                   settings page (desktop and phone).
  phase "parked":  a WebinarJam body with an unknown e-mail key was parked: the overview counts
                   it, the problems page lists it without its body; screenshot the problems page.
  phase "reprocess": (serve restarted with the alias) press Reprocess, see it gone.
Exits non-zero with a message on the first expectation that fails.
"""

import argparse
import os
import sys

from playwright.sync_api import expect, sync_playwright


def sign_in(page, url, token):
    page.goto(f"{url}/console")
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")


def find_contact(page, email, contact_hash):
    page.fill("#email", email)
    page.click("form.search button[type=submit]")
    expect(page).to_have_url(f"{page.url.split('/console')[0]}/console/contacts/{contact_hash}")
    assert "@" not in page.url, f"an address in the URL: {page.url}"
    expect(page.locator("p.email")).to_have_text(email)


def phase_problem(page, args):
    sign_in(page, args.url, args.token)
    find_contact(page, args.email, args.contact_hash)
    expect(page.locator("ol.timeline")).to_contain_text("Spring Launch")
    expect(page.locator("#field-problems li.problem")).to_contain_text(args.field)
    page.goto(f"{args.url}/console")
    expect(page.locator("#problems")).not_to_have_text("0")
    page.set_viewport_size({"width": 1100, "height": 900})
    page.screenshot(path=os.path.join(args.screenshots, "overview.png"), full_page=True)


def phase_fix(page, args):
    sign_in(page, args.url, args.token)
    page.click("nav >> text=Problems")
    problem = page.locator("#field-problem-list li.problem", has_text=args.field)
    expect(problem).to_have_count(1)
    problem.locator("button", has_text="Resync").click()
    expect(page.locator(".notice")).to_have_text("Resynced with KlickTipp.")
    expect(page.locator("#field-problems")).to_contain_text("No field problems.")
    page.set_viewport_size({"width": 1100, "height": 900})
    page.screenshot(path=os.path.join(args.screenshots, "timeline.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=os.path.join(args.screenshots, "timeline-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1100, "height": 900})
    page.click("nav >> text=Problems")
    expect(page.locator("#field-problem-list")).to_contain_text("No field problems.")
    expect(page.locator("#dead-letter-list tbody tr")).to_have_count(1)
    page.click("#redrive")
    expect(page.locator(".notice")).to_have_text("1 dead letter(s) sent back to the queue.")
    expect(page.locator("#dead-letter-list")).to_contain_text("No dead letters.")


def phase_settings(page, args):
    sign_in(page, args.url, args.token)
    page.click("nav >> text=Settings")
    expect(page.locator("h1")).to_have_text("Settings")
    page.click(f"#webinar-list a:text-is('{args.webinar}')")
    expect(page.locator("h1")).to_have_text(args.webinar)
    assert "@" not in page.url, f"an address in the URL: {page.url}"
    attended = page.locator("#tag_Attended")
    expect(attended.locator("option").first).to_contain_text(f"Generated: {args.generated_prefix}")
    attended.select_option(label=args.existing_tag)
    # The missing tag of another state: its "Create tag" button sits beside its dropdown.
    create_row = page.locator(f"#state-tag_{args.create_state}")
    expect(create_row.locator("button", has_text="Create tag")).to_have_count(1)
    create_row.locator("button", has_text="Create tag").click()
    expect(page.locator(".notice")).to_contain_text("Created the tag")
    expect(page.locator(f"#state-tag_{args.create_state}")).to_contain_text("exists (id ")
    expect(page.locator(f"#state-tag_{args.create_state} button")).to_have_count(0)
    # The choice made before "Create tag" is still there; Save keeps it.
    expect(page.locator("#tag_Attended option:checked")).to_have_text(args.existing_tag)
    page.click("#save")
    expect(page.locator(".notice")).to_contain_text("Saved.")
    expect(page.locator("#state-tag_Attended .preview")).to_contain_text(args.existing_tag)
    expect(page.locator("#state-tag_Attended .preview")).to_contain_text("this webinar")
    expect(page.locator("#tag_Attended option:checked")).to_have_text(args.existing_tag)
    page.set_viewport_size({"width": 1100, "height": 900})
    page.screenshot(path=os.path.join(args.screenshots, "settings.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=os.path.join(args.screenshots, "settings-phone.png"), full_page=True)


def phase_parked(page, args):
    sign_in(page, args.url, args.token)
    expect(page.locator("#parked")).to_have_text("1")
    page.click("nav >> text=Problems")
    rows = page.locator("#parked-list tr.parked")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("webinarjam")
    expect(rows.first).to_contain_text("no e-mail")
    listing = page.locator("#parked-list").inner_text()
    assert args.email not in listing, "the parked list shows an address"
    page.set_viewport_size({"width": 1100, "height": 900})
    page.screenshot(path=os.path.join(args.screenshots, "problems.png"), full_page=True)


def phase_reprocess(page, args):
    sign_in(page, args.url, args.token)
    page.click("nav >> text=Problems")
    row = page.locator("#parked-list tr.parked")
    expect(row).to_have_count(1)
    row.locator("button", has_text="Reprocess").click()
    expect(page.locator(".notice")).to_have_text("1 parked webhook(s) reprocessed, 0 still parked.")
    expect(page.locator("#parked-list")).to_contain_text("No parked webhooks.")
    page.goto(f"{args.url}/console")
    expect(page.locator("#parked")).to_have_text("0")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["problem", "fix", "settings", "parked", "reprocess"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--contact-hash", default="")
    parser.add_argument("--field", default="")
    parser.add_argument("--webinar", default="")
    parser.add_argument("--generated-prefix", default="")
    parser.add_argument("--existing-tag", default="")
    parser.add_argument("--create-state", default="")
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            {
                "problem": phase_problem,
                "fix": phase_fix,
                "settings": phase_settings,
                "parked": phase_parked,
                "reprocess": phase_reprocess,
            }[args.phase](page, args)
        finally:
            browser.close()
    print(f"browser phase {args.phase}: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"browser phase failed: {error}", file=sys.stderr)
        sys.exit(1)
