// hello answers {name} with a greeting. It runs for HTTP requests on /greet
// and for events on the greetings stream alike.
exports.hello = async (event, context) => {
  const input = event.type === "butter.http.request" ? JSON.parse(event.data.body || "{}") : event.data;
  context.log("greeting", input.name);
  return { greeting: `hello, ${input.name || "world"}` };
};
