// A subscriber written with the npm `eventsource` package (not our code): prints one JSON
// line per thing it sees, for tests/test_subscriptions.py to read.
//   node subscribe.mjs URL TYPE [TYPE ...]   (the event names to listen for)
import { EventSource } from "eventsource";

const [url, ...types] = process.argv.slice(2);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const source = new EventSource(url);
source.onopen = () => say({ kind: "open" });
source.onerror = () => say({ kind: "error" });
for (const type of types) {
  source.addEventListener(type, (e) => say({ kind: "event", type: e.type, id: e.lastEventId, data: JSON.parse(e.data) }));
}
process.stdin.on("end", () => { source.close(); process.exit(0); });
process.stdin.resume();
