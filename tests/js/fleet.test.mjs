// node --test tests/js: the fleet page's pure parts (static/fleet.js), without a page.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fleetLink, fleetOrder, sparkPoints } from "../../static/fleet.js";

test("only absolute http and https URLs become links", () => {
  assert.equal(fleetLink("http://10.0.0.1:8080/"), "http://10.0.0.1:8080/");
  assert.equal(fleetLink("https://dash.example.org/"), "https://dash.example.org/");
  for (const bad of ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "/relative", "//evil.example/",
                     "", null, 7, "vbscript:x", "file:///etc/passwd"]) {
    assert.equal(fleetLink(bad), null, String(bad));
  }
});

test("silent first, then alerts firing, then jobs down, then by name", () => {
  const rows = [
    { instance: "e", stale: false, alerts_firing: 0, jobs_down: 0 },
    { instance: "d", stale: false, alerts_firing: 0, jobs_down: 2 },
    { instance: "c", stale: false, alerts_firing: 1, jobs_down: 5 },
    { instance: "b", stale: true, alerts_firing: 0, jobs_down: 0 },
    { instance: "a", stale: false, alerts_firing: 0, jobs_down: 0 },
    { instance: "f", stale: true, alerts_firing: 3, jobs_down: 0 },
  ];
  assert.deepEqual(rows.sort(fleetOrder).map((r) => r.instance), ["b", "f", "c", "d", "a", "e"]);
});

test("a sparkline skips gaps and keeps values inside its box", () => {
  assert.equal(sparkPoints([0, null, 100, 150, -5], 100, 20), "0.0,20.0 50.0,0.0 75.0,0.0 100.0,20.0");
  assert.equal(sparkPoints([null, null], 100, 20), "");
  assert.equal(sparkPoints([50], 100, 20), "97.0,10.0 100.0,10.0");  // a lone point: a short tick
  assert.equal(sparkPoints([null, 25, null], 100, 20), "47.0,15.0 50.0,15.0");
});
