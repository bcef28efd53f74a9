// Functions for the stdio unit tests: crashing the host, binary data.
exports.crash = () => process.exit(3);
exports.bytes = (event) => Buffer.from(event.data, "base64").reverse();
exports.echo = (event) => event;
exports.env = () => ({ fixture: process.env.FIXTURE_ENV, spec: process.env.SPEC_ENV });
exports.nested = { fn: () => "nested" };
exports.wait = (event, context) => {
  context.log("waiting");
  return new Promise((resolve) => setTimeout(() => resolve("late"), 200));
};
exports.spin = () => { for (;;) {} };
