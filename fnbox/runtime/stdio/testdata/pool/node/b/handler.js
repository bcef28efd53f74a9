// A pool test deployment: deployment b has the same file and function
// names with other answers, so the pool must keep their code apart.
const fs = require("fs");
const path = require("path");
const me = "b";
exports.who = (event) => {
  console.log("stdout-" + me + " " + event.data);
  console.error("stderr-" + me + " " + event.data);
  // Relative to the module, not to the working directory (the host's own).
  return { who: me, file: fs.readFileSync(path.join(__dirname, "name.txt"), "utf8").trim(), cwdIsDir: process.cwd() === __dirname };
};
exports.slow = (event, context) => {
  context.log("started");
  return new Promise((resolve) => setTimeout(() => resolve("late"), 20000));
};
exports.crash = () => process.exit(3);
exports.spin = () => { for (;;) {} };
// loaded counts the pool test deployments' entry modules in the host.
exports.loaded = () => Object.keys(require.cache).filter((k) => k.includes("testdata/pool/")).length;
