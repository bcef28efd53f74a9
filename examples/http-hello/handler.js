// hello greets the caller named in the JSON body ({"name": "ada"}) or the
// query (?name=ada), answering with a full HTTP response.
exports.hello = async (event) => {
  const req = event.data;
  let name = (req.query && req.query.name) || "world";
  if (req.body) {
    try {
      name = JSON.parse(req.body).name || name;
    } catch (e) {
      return { status: 400, headers: { "content-type": "text/plain" }, body: "body is not JSON: " + e.message };
    }
  }
  return {
    status: 200,
    headers: { "content-type": "application/json" },
    body: { greeting: "hello " + name },
  };
};
