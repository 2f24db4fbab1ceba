// node --test tests/js: the job run chart's plan (static/runchart.js), without a canvas.
import { test } from "node:test";
import assert from "node:assert/strict";
import { durationTicks, runPlan } from "../../static/runchart.js";

const job = { start_grace: 3600, min_runtime: 60, running: 1 };

test("runs become bars oldest first; failures, flags and the run still going are told apart", () => {
  const runs = [
    { n: 4, kind: "start", start: 990 },
    { n: 3, kind: "log", ts: 980, output: "x" },
    { n: 2, kind: "fail", start: 900, end: 930, duration: 30, exit: 3, flags: [] },
    { n: 1, kind: "success", start: 800, end: 802, duration: 2, flags: ["too fast"] },
  ];
  const plan = runPlan(runs, job, 1000);
  assert.deepEqual(plan.bars.map((b) => b.n), [1, 2, 4]);
  assert.deepEqual(plan.bars.map((b) => [b.value, b.failed, b.running, b.flags.length]),
    [[2, false, false, 1], [30, true, false, 0], [10, false, true, 0]]);
});

test("a start superseded by a later one is not counted as running", () => {
  const runs = [{ n: 1, kind: "start", start: 10 }, { n: 2, kind: "start", start: 20 }];
  const plan = runPlan(runs, { running: 1 }, 30);
  assert.deepEqual(plan.bars.map((b) => [b.running, b.value]), [[false, null], [true, 10]]);
});

test("the minimum is always to scale; the grace only when it is near the runs", () => {
  const far = runPlan([{ n: 1, kind: "success", duration: 2 }], job, 0);
  assert.deepEqual(far.lines, [{ name: "grace", value: 3600, above: true }, { name: "min", value: 60, above: false }]);
  assert.equal(far.top, 60);
  const near = runPlan([{ n: 1, kind: "success", duration: 1500 }], job, 0);
  assert.equal(near.lines[0].above, false);
  assert.equal(near.top, 3600);
  assert.deepEqual(runPlan([], {}, 0), { bars: [], lines: [], top: 1 });
});

test("duration ticks fall on clock steps and reach the top", () => {
  assert.deepEqual(durationTicks(60, 4), [0, 15, 30, 45, 60]);
  assert.deepEqual(durationTicks(3600, 4), [0, 900, 1800, 2700, 3600]);
  assert.deepEqual(durationTicks(2.2, 4), [0, 1, 2, 3]);
  assert.deepEqual(durationTicks(0), [0, 1]);
});
