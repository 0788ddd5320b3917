#!/usr/bin/env bash
# The web console in a real browser: Debian's headless Chromium driven by Selenium (chromium-driver from Debian,
# selenium from PyPI into target/compat/console-venv; nothing downloaded from a browser CDN), against a real
# `rill broker` holding data the `rill` CLI produced. Checks what each page shows (topic names, offsets, a
# produced message's value, a group's lag), clicks through produce, reset offsets, create and delete topic, a
# topic's settings, the cluster's topic defaults, added partitions, deleted records, a user, an ACL, a quota and
# a registered schema with their confirmations, and that a value and a header holding markup are shown as text
# with no script run.
# Then signing in: a second broker with `--admin-auth required` sends Chromium to its sign-in page, refuses a
# wrong password, lets the right one in (the page shows who is signed in) and signs out.
# Screenshots land in target/compat/console/.
# Usage: tests/compat/console.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/compat/tools.sh
need_chromium
need_selenium
venv=$console_venv
cargo build --quiet -p rill-cli
rill="$PWD/target/debug/rill"
shots="$PWD/target/compat/console"
rm -rf "$shots" && mkdir -p "$shots"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

RUST_LOG=warn "$rill" broker --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/data" \
  >"$work/broker.out" 2>"$work/broker.err" &
pids+=($!)
deadline=$((SECONDS + 30))
until grep -q '^rill admin listening on' "$work/broker.out"; do
  if ((SECONDS >= deadline)); then echo "console.sh: the broker did not start" >&2; cat "$work/broker.err" >&2; exit 1; fi
  sleep 0.2
done
export RILL_BROKER=$(sed -n 's/^rill broker listening on //p' "$work/broker.out")
admin=$(sed -n 's|^rill admin listening on ||p' "$work/broker.out")

# Data: ten JSON orders over three partitions by key, a group that has read none of them (lag 10), and a topic
# whose value and header are markup that would retitle the page if it ran.
"$rill" topic create orders --partitions 3 >/dev/null
for i in $(seq 1 10); do echo "customer-$((i % 4)):{\"order\":$i,\"item\":\"widget-$i\"}"; done \
  | "$rill" produce orders --key-separator : >/dev/null
"$rill" group reset-offsets billing --topic orders --to-earliest >/dev/null
"$rill" topic defaults --config log.retention.ms=259200000 >/dev/null
"$rill" topic create hostile >/dev/null
"$rill" produce hostile --value '<script>document.title="pwned";window.pwned=1</script>' \
  --header 'note=<img src=x onerror="document.title=&quot;pwned&quot;">' >/dev/null

SE_OFFLINE=true timeout 240 "$venv/bin/python" - "$admin" "$shots" "$rill" <<'PY'
import subprocess, sys, threading, time
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, "tests/compat")
from console_browser import replaced, screenshot, start_chromium

admin, shots, rill = sys.argv[1], sys.argv[2], sys.argv[3]
driver = start_chromium()
checks = 0

def visit(path, shot):
    driver.get(admin + path)
    screenshot(driver, f"{shots}/{shot}.png")
    return driver.find_element(By.TAG_NAME, "main").text

def submit(button):
    """Clicks a form's button and waits until the next page has replaced this one."""
    old = driver.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(driver, 30).until(replaced(old))

def check(condition, what):
    global checks
    if not condition:
        screenshot(driver, f"{shots}/failed.png")
        raise AssertionError(f"{what}\n--- page {driver.current_url}:\n{driver.find_element(By.TAG_NAME, 'body').text}")
    checks += 1

try:
    text = visit("/?live=0", "overview")
    stat = lambda name: driver.find_element(By.CSS_SELECTOR, f'[data-stat="{name}"] b').text
    check(stat("topics") == "2" and stat("partitions") == "4", "overview counts 2 topics, 4 partitions")

    text = visit("/topics", "topics")
    check("orders" in text and "hostile" in text, "the topic list names both topics")
    defaults = driver.find_element(By.ID, "topic-defaults").text
    check("log.retention.ms=259200000" in defaults, f"the cluster's topic defaults shown: {defaults}")
    text = visit("/topics?q=ord", "topics-search")
    check("orders" in text and "hostile" not in text, "search keeps only matching topics")

    visit("/topics/orders?live=0", "topic")
    rows = driver.find_elements(By.CSS_SELECTOR, "#partitions tr")[1:]
    ends = [int(r.find_elements(By.TAG_NAME, "td")[2].text.replace(",", "")) for r in rows]
    check(len(rows) == 3 and sum(ends) == 10, f"three partitions whose end offsets sum to 10: {ends}")
    check("retention by age" in driver.find_element(By.ID, "settings").text, "retention settings shown")

    # The partition of customer-1's orders, read from the earliest record, filtered by key.
    visit("/topics/orders/messages?partition=0&from=earliest", "messages")
    values = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#messages td.value")]
    check(values and all('"order":' in v for v in values), f"JSON values shown: {values}")
    check(any("\n" in v for v in values), "JSON is pretty-printed over several lines")
    key = driver.find_elements(By.CSS_SELECTOR, "#messages td.key")[0].text
    driver.get(f"{admin}/topics/orders/messages?partition=0&from=earliest&key={key}")
    keys = {e.text for e in driver.find_elements(By.CSS_SELECTOR, "#messages td.key")}
    check(keys == {key}, f"the key filter keeps only {key}: {keys}")

    # XSS: the markup is shown as text and no script ran.
    visit("/topics/hostile/messages?from=earliest", "xss")
    value = driver.find_element(By.CSS_SELECTOR, "#messages td.value").text
    header = driver.find_element(By.CSS_SELECTOR, "#messages td.headers").text
    check(value == '<script>document.title="pwned";window.pwned=1</script>', f"the value is text: {value!r}")
    check("<img src=x onerror=" in header, f"the header is text: {header!r}")
    check(driver.title == "Messages of hostile · rill", f"no script retitled the page: {driver.title!r}")
    check(driver.execute_script("return typeof window.pwned") == "undefined", "no script set window.pwned")
    check(not driver.find_elements(By.CSS_SELECTOR, "main img, main script"), "no element was made from data")

    # A group's lag, then a reset to the latest offsets through its confirmation.
    visit("/groups/billing?live=0", "group")
    check(driver.find_element(By.CSS_SELECTOR, "#total-lag b").text == "10", "the group lags 10 records")
    check(len(driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")) == 3, "a lag bar per partition")
    visit("/groups/billing/reset", "reset-form")
    driver.find_element(By.NAME, "topic").send_keys("orders")
    driver.find_element(By.CSS_SELECTOR, "select[name=to] option:nth-child(2)").click()
    submit(driver.find_element(By.CSS_SELECTOR, "main form button"))
    screenshot(driver, f"{shots}/reset-confirm.png")
    submit(driver.find_element(By.ID, "confirm"))
    check("Offsets reset." in driver.find_element(By.TAG_NAME, "main").text, "the reset was made")
    visit("/groups/billing?live=0", "group-after-reset")
    check(driver.find_element(By.CSS_SELECTOR, "#total-lag b").text == "0", "no lag after the reset")

    # Produce a test message, then find it in the browser.
    visit("/topics/orders/produce?partition=2", "produce-form")
    driver.find_element(By.NAME, "key").send_keys("from-the-browser")
    driver.find_element(By.NAME, "value").send_keys("hello from chromium")
    driver.find_element(By.NAME, "headers").send_keys("origin: console")
    submit(driver.find_element(By.ID, "produce"))
    produced = driver.find_element(By.ID, "produced").text
    check(produced.startswith("Produced to partition 2 at offset "), produced)
    submit(driver.find_element(By.LINK_TEXT, "See it in the message browser"))
    screenshot(driver, f"{shots}/produced.png")
    check(driver.find_element(By.CSS_SELECTOR, "#messages td.value").text == "hello from chromium", "the value is shown")
    headers = " ".join(driver.find_element(By.CSS_SELECTOR, "#messages td.headers").text.split())
    check(headers == "origin: console", f"the header too: {headers!r}")

    # Create a topic, then delete it, each after its confirmation.
    visit("/create-topic", "create-form")
    driver.find_element(By.NAME, "name").send_keys("made-in-browser")
    driver.find_element(By.NAME, "partitions").clear()
    driver.find_element(By.NAME, "partitions").send_keys("2")
    submit(driver.find_element(By.CSS_SELECTOR, "main form button"))
    check("Create topic made-in-browser with 2 partition(s)" in driver.find_element(By.TAG_NAME, "main").text, "confirm")
    submit(driver.find_element(By.ID, "confirm"))
    check("created" in driver.find_element(By.TAG_NAME, "main").text, "the topic was created")
    visit("/topics/made-in-browser", "created-topic")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#partitions tr")) == 3, "it has two partitions")
    visit("/topics/made-in-browser/delete", "delete-confirm")
    submit(driver.find_element(By.ID, "confirm"))
    check("deleted" in driver.find_element(By.TAG_NAME, "main").text, "the topic was deleted")
    text = visit("/topics", "topics-after-delete")
    check("made-in-browser" not in text, "the deleted topic is gone from the list")

    # A topic's settings, partitions and records, each through its form and confirmation, from the topic's page.
    visit("/topics/orders?live=0", "topic-actions")
    submit(driver.find_element(By.LINK_TEXT, "Edit settings"))
    screenshot(driver, f"{shots}/settings.png")
    source = lambda key: driver.find_element(By.XPATH, f'//table[@id="topic-settings"]//tr[td/code="{key}"]/td[3]').text
    check(source("retention.ms") == "cluster default", f"retention.ms follows the cluster default: {source('retention.ms')}")
    driver.find_element(By.NAME, "set.retention.ms").send_keys("86400000")
    driver.find_element(By.NAME, "set.compression.type").send_keys("zstd")
    submit(driver.find_element(By.ID, "review"))
    screenshot(driver, f"{shots}/settings-confirm.png")
    changes = driver.find_element(By.ID, "changes").text
    check("259200000" in changes and "86400000" in changes and "zstd" in changes, f"now and after: {changes}")
    submit(driver.find_element(By.ID, "confirm"))
    check("changed" in driver.find_element(By.TAG_NAME, "main").text, "the settings were changed")
    described = subprocess.run([rill, "topic", "describe", "orders"], capture_output=True, text=True, timeout=30).stdout
    check("86400000" in described and "zstd" in described, f"the CLI sees the new settings: {described}")
    visit("/topics/orders/settings", "settings-after")
    check(source("retention.ms") == "this topic", "retention.ms is the topic's own now")
    driver.find_element(By.NAME, "reset.retention.ms").click()
    submit(driver.find_element(By.ID, "review"))
    submit(driver.find_element(By.ID, "confirm"))
    visit("/topics/orders/settings", "settings-reset")
    check(source("retention.ms") == "cluster default", "ticked back to the cluster default")

    visit("/topics/orders/partitions", "partitions-form")
    count_input = driver.find_element(By.NAME, "partitions")
    count_input.clear()
    count_input.send_keys("4")
    submit(driver.find_element(By.CSS_SELECTOR, "main form button"))
    check("from 3 to 4 partitions" in driver.find_element(By.TAG_NAME, "main").text, "the confirmation names both counts")
    submit(driver.find_element(By.ID, "confirm"))
    visit("/topics/orders?live=0", "topic-four-partitions")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#partitions tr")) == 5, "the topic has four partitions")

    visit("/topics/orders/delete-records", "delete-records-form")
    driver.find_element(By.NAME, "partition").send_keys("2")
    submit(driver.find_element(By.CSS_SELECTOR, "main form button"))
    submit(driver.find_element(By.ID, "confirm"))
    screenshot(driver, f"{shots}/records-deleted.png")
    check("deleted." in driver.find_element(By.TAG_NAME, "main").text, "partition 2's records were deleted")
    visit("/topics/orders/messages?partition=2&from=earliest", "messages-after-delete")
    check(not driver.find_elements(By.CSS_SELECTOR, "#messages td.value"), "partition 2 shows no record from the earliest")

    # The cluster's topic defaults, from the topic list's link: a retention by size both topics take.
    visit("/topics", "topics-defaults-link")
    submit(driver.find_element(By.LINK_TEXT, "Change them"))
    driver.find_element(By.NAME, "set.log.retention.bytes").send_keys("1073741824")
    submit(driver.find_element(By.ID, "review"))
    screenshot(driver, f"{shots}/defaults-confirm.png")
    followers = driver.find_element(By.ID, "topics-changed").text
    check(followers.startswith("2 topic(s)"), f"both topics follow the change: {followers}")
    submit(driver.find_element(By.ID, "confirm"))
    visit("/topics/hostile/settings", "settings-following-default")
    check(source("retention.bytes") == "cluster default", "hostile takes the new default")
    value = driver.find_element(By.XPATH, '//table[@id="topic-settings"]//tr[td/code="retention.bytes"]/td[2]').text
    check(value == "1073741824", f"at the default's value: {value}")

    # Users and ACLs: a user made with a password typed twice, a binding picked from the lists, then removed.
    visit("/users", "users")
    driver.find_element(By.NAME, "name").send_keys("dora")
    driver.find_element(By.NAME, "password").send_keys("quill-456")
    driver.find_element(By.NAME, "again").send_keys("quill-456")
    submit(driver.find_element(By.ID, "create-user"))
    check("User:dora created" in driver.find_element(By.TAG_NAME, "main").text, "the user was created")
    check("quill-456" not in driver.page_source, "the password is in no page")
    users = subprocess.run([rill, "user", "list"], capture_output=True, text=True, timeout=30).stdout
    check("dora" in users, f"the CLI lists dora: {users}")
    visit("/acls", "acls")
    driver.find_element(By.NAME, "principal").send_keys("User:dora")
    Select(driver.find_element(By.NAME, "operation")).select_by_visible_text("write")
    driver.find_element(By.NAME, "name").send_keys("orders")
    submit(driver.find_element(By.ID, "add-acl"))
    binding = driver.find_element(By.ID, "binding").text
    check(binding == 'allow User:dora to write topic "orders"?', f"the confirmation words the binding: {binding}")
    submit(driver.find_element(By.ID, "confirm"))
    visit("/acls?q=dora", "acls-dora")
    rows = driver.find_elements(By.CSS_SELECTOR, "#acls tr")[1:]
    check(len(rows) == 1 and "write" in rows[0].text, f"the binding is listed: {[r.text for r in rows]}")
    submit(rows[0].find_element(By.TAG_NAME, "button"))
    submit(driver.find_element(By.ID, "confirm"))
    check("Binding removed" in driver.find_element(By.TAG_NAME, "main").text, "the binding was removed")

    # A quota for dora's clients, from the Quotas page.
    visit("/quotas", "quotas")
    driver.find_element(By.NAME, "user").send_keys("dora")
    driver.find_element(By.NAME, "producer_byte_rate").send_keys("1048576")
    submit(driver.find_element(By.ID, "review"))
    check("producer_byte_rate: 1048576" in driver.find_element(By.ID, "changes").text, "the confirmation lists the rate")
    submit(driver.find_element(By.ID, "confirm"))
    held = driver.find_element(By.ID, "held").text
    check(held == "user dora holds now: producer_byte_rate=1048576", f"the quota is held: {held}")
    quotas = subprocess.run([rill, "quota", "list"], capture_output=True, text=True, timeout=30).stdout
    check("dora" in quotas and "1048576" in quotas, f"the CLI lists it: {quotas}")

    # A Protobuf schema registered from the Schemas page: typed into the textarea, carried through the
    # confirmation with its line breaks (without them the comment would swallow the message).
    visit("/schemas", "schemas")
    driver.find_element(By.NAME, "subject").send_keys("pings-value")
    Select(driver.find_element(By.NAME, "type")).select_by_visible_text("PROTOBUF")
    proto = 'syntax = "proto3";\n// a comment that ends at its line break\nmessage Ping { string id = 1; }\n'
    driver.find_element(By.NAME, "schema").send_keys(proto)
    submit(driver.find_element(By.ID, "register"))
    plan = driver.find_element(By.ID, "plan").text
    check(plan.startswith("Register this PROTOBUF schema as version 1 of pings-value"), f"the confirmation: {plan}")
    submit(driver.find_element(By.ID, "confirm"))
    registered = driver.find_element(By.ID, "registered").text
    check(registered.startswith("Registered pings-value version 1"), f"registered: {registered}")
    shown = visit("/schemas/pings-value", "schema-registered")
    check("message Ping" in shown and "PROTOBUF" in shown, f"the subject page shows it: {shown[:300]}")

    # The throughput chart, once the sampler has two readings (it samples every 5 s).
    deadline = time.time() + 20
    while not driver.find_elements(By.CSS_SELECTOR, "svg.chart path.s-in") and time.time() < deadline:
        time.sleep(1)
        driver.get(admin + "/")
    screenshot(driver, f"{shots}/overview-chart.png")
    check(driver.find_elements(By.CSS_SELECTOR, "svg.chart path.s-in"), "the overview draws the throughput chart")
    # The group's lag over time, from the same sampler (billing has commits since the start).
    deadline = time.time() + 20
    while not driver.find_elements(By.CSS_SELECTOR, "#lag-history path.s-lag") and time.time() < deadline:
        time.sleep(1)
        driver.get(admin + "/groups/billing")
    screenshot(driver, f"{shots}/group-lag-history.png")
    lines = driver.find_elements(By.CSS_SELECTOR, "#lag-history path.s-lag")
    check(lines and lines[0].get_attribute("d").startswith("M"), "the group page draws its total lag over time")

    # Live pages: the test loads each once and never again; the page's own meta refresh must bring the figures
    # the CLI makes meanwhile. The bound is 30 s: a reload every 5 s, a sample every 5 s, and a loaded machine.
    def live_figure(read, want, what, bound=30):
        """Waits, without reloading, until `read()` on the page as it now is satisfies `want`."""
        def ready(_driver):
            try:
                return want(read())
            except (WebDriverException, ValueError, IndexError):
                return False  # mid-reload: the old page's elements are gone, the new one's not yet there
        try:
            WebDriverWait(driver, bound, poll_frequency=0.5).until(ready)
        except TimeoutException:
            check(False, f"{what} within {bound} s without a reload by the test")
        check(True, what)

    def produce(count, partition):
        records = "".join(f"live-{i}\n" for i in range(count))
        subprocess.run([rill, "produce", "orders", "--partition", str(partition)], input=records.encode(),
                       check=True, stdout=subprocess.DEVNULL, timeout=30)

    def end_offsets():
        rows = driver.find_elements(By.CSS_SELECTOR, "#partitions tr")[1:]
        return [int(r.find_elements(By.TAG_NAME, "td")[2].text.replace(",", "")) for r in rows]

    # With its own interval in the query: the reload must keep the query (and so the interval).
    visit("/topics/orders?live=3", "live-topic-before")
    check("Live: on, every 3 s" in driver.find_element(By.ID, "live").text, "the topic page says it is live")
    url, before, first_page = driver.current_url, end_offsets(), driver.find_element(By.TAG_NAME, "html")
    produce(25, 1)
    live_figure(end_offsets, lambda ends: ends[1] == before[1] + 25, "partition 1's new end offset shown")
    screenshot(driver, f"{shots}/live-topic-after.png")
    check(replaced(first_page)(driver) and driver.current_url == url, f"the page reloaded itself at {url}: {driver.current_url}")
    check("every 3 s" in driver.find_element(By.ID, "live").text, "the reloaded page kept ?live=3")

    # The Overview's rate: records produced every second for 15 s, so that several 5-s samples see them.
    visit("/", "live-overview-before")
    check(driver.find_element(By.ID, "live").text.startswith("Live: on, every 5 s"), "the overview is live by default")
    def produce_for_15_s():
        for _ in range(15):
            produce(100, 0)
            time.sleep(1)
    burst = threading.Thread(target=produce_for_15_s)
    burst.start()
    rate_in = lambda: float(driver.find_element(By.ID, "rates").text.split(" records/s in")[0])
    live_figure(rate_in, lambda rate: rate >= 20, "the overview's records/s in over 20 while the CLI produces")
    screenshot(driver, f"{shots}/live-overview-after.png")
    check(driver.find_elements(By.CSS_SELECTOR, "svg.chart path.s-in"), "the throughput chart is still drawn")
    burst.join()

    # Turned off, a page stays as it was loaded: the same document after a whole default interval and more.
    visit("/?live=0", "live-off")
    still = driver.find_element(By.TAG_NAME, "html")
    check("off" in driver.find_element(By.ID, "live").text, "the switch shows off")
    time.sleep(8)
    check(not replaced(still)(driver), "a page with ?live=0 did not reload itself")
    # A page with a form is never live: what the user types is not thrown away.
    visit("/topics/orders/produce", "produce-not-live")
    form_page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.NAME, "value").send_keys("half-typed")
    time.sleep(8)
    check(not replaced(form_page)(driver), "the produce page did not reload itself")
    check(driver.find_element(By.NAME, "value").get_attribute("value") == "half-typed", "what was typed is kept")
finally:
    driver.quit()
print(f"console.sh: {checks} checks passed in Chromium; screenshots in {shots}")
PY
"$rill" topic describe made-in-browser >/dev/null 2>&1 && { echo "console.sh: the deleted topic still exists" >&2; exit 1; }
echo "console.sh: the console shows topics, offsets, messages and lag, and runs no script from data"

# Signing in. gRPC stays open (only the admin listener requires authentication), so the CLI makes the user.
RUST_LOG=warn "$rill" broker --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/signin" \
  --admin-auth required >"$work/signin.out" 2>"$work/signin.err" &
pids+=($!)
deadline=$((SECONDS + 30))
until grep -q '^rill admin listening on' "$work/signin.out"; do
  if ((SECONDS >= deadline)); then echo "console.sh: the second broker did not start" >&2; cat "$work/signin.err" >&2; exit 1; fi
  sleep 0.2
done
signin_broker=$(sed -n 's/^rill broker listening on //p' "$work/signin.out")
signin_admin=$(sed -n 's|^rill admin listening on ||p' "$work/signin.out")
printf 'pencil-123\n' | RILL_BROKER=$signin_broker "$rill" user create alice --password-stdin >/dev/null
RILL_BROKER=$signin_broker "$rill" topic create signed-orders >/dev/null

SE_OFFLINE=true timeout 120 "$venv/bin/python" - "$signin_admin" "$shots" <<'PY'
import sys
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, "tests/compat")
from console_browser import replaced, screenshot, start_chromium

admin, shots = sys.argv[1], sys.argv[2]
driver = start_chromium()
checks = 0

def check(condition, what):
    global checks
    if not condition:
        screenshot(driver, f"{shots}/signin-failed.png")
        raise AssertionError(f"{what}\n--- page {driver.current_url}:\n{driver.find_element(By.TAG_NAME, 'body').text}")
    checks += 1

def sign_in(user, password, shot):
    driver.find_element(By.ID, "user").clear()
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    screenshot(driver, f"{shots}/{shot}.png")
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, "signin").click()
    WebDriverWait(driver, 30).until(replaced(old))

try:
    driver.get(admin + "/topics")
    screenshot(driver, f"{shots}/signin-page.png")
    check(driver.current_url.startswith(admin + "/login"), f"sent to the sign-in page: {driver.current_url}")
    check(driver.title == "Sign in · rill", f"the sign-in page: {driver.title!r}")
    check("signed-orders" not in driver.find_element(By.TAG_NAME, "body").text, "no data before signing in")

    sign_in("alice", "wrong-password", "signin-wrong")
    screenshot(driver, f"{shots}/signin-refused.png")
    check("Invalid user name or password." in driver.find_element(By.ID, "signin-error").text, "a wrong password is refused")
    check(not driver.get_cookies(), f"no cookie for a wrong password: {driver.get_cookies()}")

    sign_in("alice", "pencil-123", "signin-right")
    screenshot(driver, f"{shots}/signed-in.png")
    check(driver.current_url == admin + "/topics", f"back where the user was going: {driver.current_url}")
    check("signed-orders" in driver.find_element(By.TAG_NAME, "main").text, "the topic list after signing in")
    check(driver.find_element(By.ID, "principal").text == "User:alice", "the page shows who is signed in")
    cookie = driver.get_cookie("rill_session")
    check(cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", f"a guarded session cookie: {cookie}")
    check(driver.execute_script("return document.cookie") == "", "no script can read the session cookie")

    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, "nav button.signout").click()
    WebDriverWait(driver, 30).until(replaced(old))
    screenshot(driver, f"{shots}/signed-out.png")
    check(driver.current_url == admin + "/login", f"signed out to the sign-in page: {driver.current_url}")
    driver.get(admin + "/")
    check(driver.current_url.startswith(admin + "/login"), "after signing out the console asks again")
finally:
    driver.quit()
print(f"console.sh: {checks} sign-in checks passed in Chromium")
PY
echo "console.sh: sign-in refuses a wrong password, shows the signed-in user and signs out"
