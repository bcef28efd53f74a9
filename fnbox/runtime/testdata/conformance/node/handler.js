// Conformance fixture: one export per suite case (see runtime.Conformance).
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

exports.echo = (event) => ({ echo: event.data });

exports.text = async (event) => `hello ${event.data.name}`;

exports.nothing = () => {};

exports.trace = (event, context) => ({ traceparent: context.traceparent });

exports.emit = async (event, context) => {
  await context.emit("audit", { seen: event.data }, { type: "com.example.audit", subject: "s1", key: "k1" });
  return { emitted: true };
};

exports.emitUndeclared = async (event, context) => {
  try {
    await context.emit("secret", { leak: true });
    return { refused: false };
  } catch (err) {
    return { refused: true, error: err.message };
  }
};

exports.request = async (event, context) => ({ answer: await context.request("questions", event.data) });

exports.fail = (event) => {
  throw new Error(`boom: ${event.data.why}`);
};

exports.slow = async (event, context) => {
  const seen = { remainingMs: context.remainingMs(), deadline: context.deadline.toISOString() };
  await sleep(event.data.sleepMs);
  return seen;
};

exports.log = (event, context) => {
  context.log("log-line", event.data.tag);
  console.log(`stdout-line ${event.data.tag}`);
  console.error(`stderr-line ${event.data.tag}`);
};

exports.batch = (events) => ({ items: events.map((e) => e.data) });
