// node --test tests/js: the Jobs section's order (static/jobs.js), without a page.
import { test } from "node:test";
import assert from "node:assert/strict";
import { troubleOrder } from "../../static/jobs.js";

test("jobs in trouble come first, then by name", () => {
  const jobs = [
    { name: "a", status: "paused" }, { name: "b", status: "up" }, { name: "c", status: "up", firing: true },
    { name: "d", status: "late" }, { name: "e", status: "down", firing: true }, { name: "f", status: "started" },
    { name: "g", status: "new" }, { name: "h", status: "something newer" },
  ];
  assert.deepEqual(jobs.sort(troubleOrder).map((j) => j.name), ["c", "e", "d", "f", "b", "h", "g", "a"]);
});
