package descriptor

import (
	"fmt"
	"strings"
	"testing"

	"github.com/buttercompass/butter/proto/topics"
)

// A rule case parses src and expects exactly the problems in want. A want
// line may start with @needle@ for the position of the first needle in
// src, so each case shows what it points at.
type ruleCase struct {
	name string
	src  string
	want []string
}

func runRules(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := make([]string, len(tc.want))
			for i, w := range tc.want {
				want[i] = at(t, tc.src, w)
			}
			got := problemsOf(t, tc.src)
			if len(got) == 0 && len(want) == 0 {
				return
			}
			diffLines(t, got, want)
		})
	}
}

// at replaces a leading @needle@ with the needle's position in src.
func at(t *testing.T, src, w string) string {
	t.Helper()
	if !strings.HasPrefix(w, "@") {
		return w
	}
	end := strings.Index(w[1:], "@") + 1
	needle := w[1:end]
	i := strings.Index(src, needle)
	if end == 0 || i < 0 {
		t.Fatalf("needle %q of %q not in the source", needle, w)
	}
	line := strings.Count(src[:i], "\n") + 1
	col := i - strings.LastIndex(src[:i], "\n")
	return fmt.Sprintf("t.yaml:%d:%d%s", line, col, w[end+1:])
}

// one wraps a function, written as a flow mapping, in a descriptor that is
// otherwise valid.
func one(fn string) string { return "name: t\nplatform: node\nfunctions:\n  - " + fn + "\n" }

// with is a valid function plus extra fields.
func with(extra string) string { return one("{fn: a.js:f, bindings: {streams: [s]}, " + extra + "}") }

// binding is a valid function with the given bindings.
func binding(b string) string { return one("{fn: a.js:f, bindings: {" + b + "}}") }

const okFunctions = "functions: [{fn: a.js:f, bindings: {streams: [s]}}]\n"

var streamRule = topics.ErrInvalidStreamName.Error()

func TestRulesDeployment(t *testing.T) {
	runRules(t, []ruleCase{
		{"valid", "name: t\nplatform: node\n" + okFunctions, nil},
		{"name missing", "platform: node\n" + okFunctions,
			[]string{"t.yaml:1:1 name: required: name the deployment, like orders"}},
		{"name upper case", "name: Orders\nplatform: node\n" + okFunctions,
			[]string{`@Orders@ name: "Orders" is not a valid name: use 1-63 characters of a-z, 0-9 and -, starting with a letter`}},
		{"name starts with digit", "name: 1st\nplatform: node\n" + okFunctions,
			[]string{`@1st@ name: "1st" is not a valid name: use 1-63 characters of a-z, 0-9 and -, starting with a letter`}},
		{"name 63 long", "name: " + strings.Repeat("a", 63) + "\nplatform: node\n" + okFunctions, nil},
		{"name 64 long", "name: " + strings.Repeat("a", 64) + "\nplatform: node\n" + okFunctions,
			[]string{fmt.Sprintf(`t.yaml:1:7 name: %q is not a valid name: use 1-63 characters of a-z, 0-9 and -, starting with a letter`, strings.Repeat("a", 64))}},
		{"name with dashes", "name: my-shop-2\nplatform: node\n" + okFunctions, nil},
		{"version semver", "name: t\nversion: 1.4.0-rc.1+b7\nplatform: node\n" + okFunctions, nil},
		{"version a number", "name: t\nversion: 2\nplatform: node\n" + okFunctions, nil},
		{"version a path", "name: t\nversion: ../../instances\nplatform: node\n" + okFunctions,
			[]string{`@../../instances@ version: "../../instances" is not a valid version: use 1-128 characters of letters, digits, ., _, + and -, starting with a letter or digit, like 1.4.0`}},
		{"version a dot", "name: t\nversion: .\nplatform: node\n" + okFunctions,
			[]string{`@.@ version: "." is not a valid version: use 1-128 characters of letters, digits, ., _, + and -, starting with a letter or digit, like 1.4.0`}},
		{"name a list", "name: [a]\nplatform: node\n" + okFunctions,
			[]string{"@[a]@ name: expected a string, got a list"}},
		{"platform missing", "name: t\n" + okFunctions,
			[]string{"t.yaml:1:1 platform: required: one of node, python, go, exec, http or image"}},
		{"platform unknown", "name: t\nplatform: nodejs\n" + okFunctions,
			[]string{`@nodejs@ platform: "nodejs" is not a platform: use node, python, go, exec, http or image`}},
		{"python", "name: t\nplatform: python\nfunctions: [{fn: app.py:handle, bindings: {streams: [s]}}]\n", nil},
		{"go", "name: t\nplatform: go\nfunctions: [{fn: ./cmd/orders, bindings: {streams: [s]}}]\n", nil},
		{"exec", "name: t\nplatform: exec\nfunctions: [{fn: ./score.sh --fast, bindings: {streams: [s]}}]\n", nil},
		{"http", "name: t\nplatform: http\nfunctions: [{fn: node server.js, bindings: {streams: [s]}}]\n", nil},
		{"image refused until it runs", "name: t\nplatform: image\nfunctions: [{fn: ghcr.io/acme/orders:1.2, bindings: {streams: [s]}}]\n",
			[]string{`t.yaml:2:11 platform: "image" is not available yet: use http with the command that serves $PORT, or node, python, go or exec; runtime: docker runs those in a container`}},
		{"runtime docker", "name: t\nplatform: node\nruntime: docker\n" + okFunctions, nil},
		{"runtime process", "name: t\nplatform: node\nruntime: process\n" + okFunctions, nil},
		{"runtime unknown", "name: t\nplatform: node\nruntime: podman\n" + okFunctions,
			[]string{`@podman@ runtime: "podman" is not a runtime: use process or docker, or leave it out for the deployer's --runtime`}},
		{"env name", "name: t\nplatform: node\nenv: {1X: a, OK_1: b}\n" + okFunctions,
			[]string{`@1X@ env["1X"]: "1X" is not an environment variable name: use letters, digits and _, not starting with a digit`}},
		{"env reserved", "name: t\nplatform: node\nenv: {butter_brokers: a}\n" + okFunctions,
			[]string{`@butter_brokers@ env.butter_brokers: names starting BUTTER_ are reserved for the platform`}},
		{"env a list", "name: t\nplatform: node\nenv: [A=1]\n" + okFunctions,
			[]string{"@[A=1]@ env: expected a mapping, got a list"}},
		{"env value a list", "name: t\nplatform: node\nenv: {A: [1]}\n" + okFunctions,
			[]string{"@[1]@ env.A: expected a string, got a list"}},
		{"env value empty", "name: t\nplatform: node\nenv: {A: , B: 2, C: true}\n" + okFunctions, nil},
		{"functions missing", "name: t\nplatform: node\n",
			[]string{"t.yaml:1:1 functions: required: at least one function"}},
		{"functions empty", "name: t\nplatform: node\nfunctions: []\n",
			[]string{"@[]@ functions: needs at least one function"}},
		{"functions a string", "name: t\nplatform: node\nfunctions: orders\n",
			[]string{"@orders@ functions: expected a list, got a string"}},
		{"function null", "name: t\nplatform: node\nfunctions: [~]\n",
			[]string{"@~@ functions[0]: expected a mapping, got null"}},
		{"function a list", "name: t\nplatform: node\nfunctions: [[a.js:f]]\n",
			[]string{"@[a.js@ functions[0]: expected a mapping, got a list"}},
		{"unknown field, close", "name: t\nplatfrom: node\n" + okFunctions, []string{
			"t.yaml:1:1 platform: required: one of node, python, go, exec, http or image",
			`@platfrom@ platfrom: unknown field (did you mean "platform"?)`,
		}},
		{"unknown field, far", "name: t\nplatform: node\nowner: me\n" + okFunctions,
			[]string{"@owner@ owner: unknown field; the fields here are name, platform, version, runtime, isolation, description, env, secretEnv, functions, bridges"}},
		{"x- fields are for anchors", "name: t\nplatform: node\nx-anything: {a: 1}\n" + okFunctions, nil},
		{"field twice", "name: t\nplatform: node\nname: u\n" + okFunctions,
			[]string{"@name: u@ name: set twice (first on line 1)"}},
		{"non-string key", "name: t\nplatform: node\n[a]: 1\n" + okFunctions,
			[]string{"@[a]@: field names must be strings, got a list"}},
		{"bad key hides nothing", "name: T\nplatform: node\n[a]: 1\nname: u\n" + okFunctions, []string{
			`@T@ name: "T" is not a valid name: use 1-63 characters of a-z, 0-9 and -, starting with a letter`,
			"@[a]@: field names must be strings, got a list",
			"@name: u@ name: set twice (first on line 1)",
		}},
		{"all problems at once", "name: T\nplatform: x\nfunctions: [{fn: a.js:f}]\n", []string{
			`@T@ name: "T" is not a valid name: use 1-63 characters of a-z, 0-9 and -, starting with a letter`,
			`@x@ platform: "x" is not a platform: use node, python, go, exec, http or image`,
			"@{fn@ functions[0].bindings: needs at least one of route, timer or streams",
		}},
	})
}

func TestRulesFunction(t *testing.T) {
	runRules(t, []ruleCase{
		{"fn missing", one("{bindings: {streams: [s]}}"),
			[]string{"@{bindings@ functions[0].fn: required: what to run, like handler.js:onOrder"}},
		{"fn empty", one(`{fn: "", bindings: {streams: [s]}}`),
			[]string{`@""@ functions[0].fn: must not be empty`}},
		{"fn a list", one("{fn: [a.js:f], bindings: {streams: [s]}}"),
			[]string{"@[a.js@ functions[0].fn: expected a string, got a list"}},
		{"fn without export", one("{fn: a.js, bindings: {streams: [s]}}"),
			[]string{`@a.js@ functions[0].fn: "a.js" is not <file>:<export>, like handler.js:onOrder`}},
		{"fn without file", one("{fn: ':f', bindings: {streams: [s]}}"),
			[]string{`@':f'@ functions[0].fn: ":f" is not <file>:<export>, like handler.js:onOrder`}},
		{"fn absolute", one("{fn: /srv/a.js:f, bindings: {streams: [s]}}"),
			[]string{`@/srv@ functions[0].fn: "/srv/a.js:f": the file must be inside the function's code, so no leading / and no ..`}},
		{"fn escapes", one("{fn: lib/../../a.js:f, bindings: {streams: [s]}}"),
			[]string{`@lib@ functions[0].fn: "lib/../../a.js:f": the file must be inside the function's code, so no leading / and no ..`}},
		{"fn bad export", one("{fn: a.js:on-order, bindings: {streams: [s]}}"),
			[]string{`@a.js@ functions[0].fn: "on-order" is not an export name in "a.js:on-order": use the function's name in the file, like onOrder`}},
		{"fn export path", one("{fn: a.js:handlers.onOrder, bindings: {streams: [s]}}"), nil},
		{"image with spaces", "name: t\nplatform: image\nfunctions: [{fn: my image, bindings: {streams: [s]}}]\n",
			[]string{`t.yaml:2:11 platform: "image" is not available yet: use http with the command that serves $PORT, or node, python, go or exec; runtime: docker runs those in a container`, `@my image@ functions[0].fn: "my image" is not an image reference: no spaces, like ghcr.io/acme/orders:1.2`}},
		{"name invalid", one("{fn: a.js:f, name: On, bindings: {streams: [s]}}"),
			[]string{`@On@ functions[0].name: "On" is not a valid name: use 1-63 characters of a-z, 0-9 and -, starting with a letter`}},
		{"names unique", "name: t\nplatform: node\nfunctions:\n  - {fn: a.js:f, name: x, bindings: {streams: [s]}}\n  - {fn: a.js:g, name: x, bindings: {streams: [s]}}\n",
			[]string{`t.yaml:5:24 functions[1].name: "x" is already the name of functions[0]`}},
		{"derived names unique", "name: t\nplatform: node\nfunctions:\n  - {fn: a.js:onOrder, bindings: {streams: [s]}}\n  - {fn: b.js:onOrder, bindings: {streams: [s]}}\n",
			[]string{`@{fn: b.js@ functions[1].name: the name derived from fn, "on-order", is already the name of functions[0] (derived from its fn): set name to tell them apart`}},
		{"name taken by a derived one", "name: t\nplatform: node\nfunctions:\n  - {fn: a.js:onOrder, bindings: {streams: [s]}}\n  - {fn: b.js:g, name: on-order, bindings: {streams: [s]}}\n",
			[]string{`@on-order,@ functions[1].name: "on-order" is already the name of functions[0] (derived from its fn)`}},
		{"named apart", "name: t\nplatform: node\nfunctions:\n  - {fn: a.js:onOrder, bindings: {streams: [s]}}\n  - {fn: b.js:onOrder, name: on-order-b, bindings: {streams: [s]}}\n", nil},
		{"bindings missing", one("{fn: a.js:f}"),
			[]string{"@{fn@ functions[0].bindings: needs at least one of route, timer or streams"}},
		{"bindings empty", one("{fn: a.js:f, bindings: {}}"),
			[]string{"@{}@ functions[0].bindings: needs at least one of route, timer or streams"}},
		{"no streams", binding("streams: [], out: o"),
			[]string{"@{streams@ functions[0].bindings: needs at least one of route, timer or streams"}},
		{"bindings a string", one("{fn: a.js:f, bindings: orders}"),
			[]string{"@orders@ functions[0].bindings: expected a mapping, got a string"}},
		{"unknown function field", with("retries: 3"),
			[]string{"@retries@ functions[0].retries: unknown field; the fields here are fn, name, bindings, delivery, scale, limits"}},
		{"unknown binding field", binding("streams: [s], stream: s"),
			[]string{`@stream: s@ functions[0].bindings.stream: unknown field (did you mean "streams"?)`}},
	})
}

func TestRulesRoute(t *testing.T) {
	runRules(t, []ruleCase{
		{"context string", binding("route: /orders"), nil},
		{"context root", binding("route: /"), nil},
		{"context relative", binding("route: orders"),
			[]string{`@orders@ functions[0].bindings.route.context: "orders" must start with /`}},
		{"context missing", binding("route: {methods: [GET]}"),
			[]string{"@{methods@ functions[0].bindings.route.context: required: the path the route serves, like /orders"}},
		{"context query", binding("route: '/a?b'"),
			[]string{`@'/a?b'@ functions[0].bindings.route.context: "/a?b" must be a path, without query, fragment or spaces`}},
		{"context trailing slash", binding("route: /a/"),
			[]string{`@/a/@ functions[0].bindings.route.context: "/a/" is not a clean path: write "/a"`}},
		{"context dot dot", binding("route: /a/../b"),
			[]string{`@/a/../b@ functions[0].bindings.route.context: "/a/../b" is not a clean path: write "/b"`}},
		{"context unique", "name: t\nplatform: node\nfunctions:\n  - {fn: a.js:f, bindings: {route: /o}}\n  - {fn: a.js:g, bindings: {route: /o}}\n",
			[]string{`t.yaml:5:36 functions[1].bindings.route.context: "/o" is already the context of functions[0]`}},
		{"route a list", binding("route: [/a]"),
			[]string{"@[/a]@ functions[0].bindings.route: expected a mapping or a context path, got a list"}},
		{"methods any case", binding("route: {context: /a, methods: [get, Post]}"), nil},
		{"method unknown", binding("route: {context: /a, methods: [GET, FETCH]}"),
			[]string{`@FETCH@ functions[0].bindings.route.methods[1]: "FETCH" is not an HTTP method: use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, CONNECT or TRACE`}},
		{"method twice", binding("route: {context: /a, methods: [POST, post]}"),
			[]string{`@post@ functions[0].bindings.route.methods[1]: "post" is listed twice`}},
		{"methods empty", binding("route: {context: /a, methods: []}"),
			[]string{"@[]@ functions[0].bindings.route.methods: lists no method: leave methods out to serve every method"}},
		{"methods a string", binding("route: {context: /a, methods: POST}"),
			[]string{"@POST@ functions[0].bindings.route.methods: expected a list, got a string"}},
		{"stream invalid", binding("route: {context: /a, stream: Req}"),
			[]string{`@Req@ functions[0].bindings.route.stream: "Req": ` + streamRule}},
		{"stream internal", binding("route: {context: /a, stream: _butter.deployments}"),
			[]string{`@_butter@ functions[0].bindings.route.stream: "_butter.deployments" is an internal stream: functions may read it but not write to it`}},
		{"timeout zero", binding("route: {context: /a, timeout: 0s}"),
			[]string{"@0s@ functions[0].bindings.route.timeout: must be more than 0"}},
		{"timeout negative", binding("route: {context: /a, timeout: -1s}"),
			[]string{"@-1s@ functions[0].bindings.route.timeout: -1s is negative"}},
		{"timeout no unit", binding("route: {context: /a, timeout: 30}"),
			[]string{"@30@ functions[0].bindings.route.timeout: 30 is not a duration: add a unit, like 30s or 30ms"}},
		{"timeout garbage", binding("route: {context: /a, timeout: soon}"),
			[]string{`@soon@ functions[0].bindings.route.timeout: "soon" is not a duration: write it like 200ms, 30s or 1m30s`}},
		{"maxBody units", binding("route: {context: /a, maxBody: 2Mi}"), nil},
		{"maxBody bytes", binding("route: {context: /a, maxBody: 4096}"), nil},
		{"maxBody zero", binding("route: {context: /a, maxBody: 0}"),
			[]string{"@0}@ functions[0].bindings.route.maxBody: must be more than 0"}},
		{"maxBody garbage", binding("route: {context: /a, maxBody: big}"),
			[]string{`@big@ functions[0].bindings.route.maxBody: "big" is not a size: write bytes, or a number with Ki, Mi, Gi, KB, MB or GB`}},
		{"mode cloudevents", binding("route: {context: /a, mode: cloudevents}"), nil},
		{"mode http", binding("route: {context: /a, mode: http}"), nil},
		{"mode unknown", binding("route: {context: /a, mode: grpc}"),
			[]string{`@grpc@ functions[0].bindings.route.mode: "grpc" is not a route mode: use http or cloudevents`}},
		{"auth api key", binding("route: {context: /a, auth: {apiKey: true, scopes: [orders:write]}}"), nil},
		{"auth jwt", binding("route: {context: /a, auth: {jwt: {issuer: 'https://id.example.com', audience: shop}}}"), nil},
		{"auth empty", binding("route: {context: /a, auth: {}}"),
			[]string{"@{}@ functions[0].bindings.route.auth: lets nobody in: set apiKey: true, jwt, or both; leave auth out for a public route"}},
		{"auth api key off", binding("route: {context: /a, auth: {apiKey: false}}"),
			[]string{"@{apiKey@ functions[0].bindings.route.auth: lets nobody in: set apiKey: true, jwt, or both; leave auth out for a public route"}},
		{"auth api key yes", binding("route: {context: /a, auth: {apiKey: yes}}"),
			[]string{"@yes@ functions[0].bindings.route.auth.apiKey: expected true or false, got a string"}},
		{"jwt issuer missing", binding("route: {context: /a, auth: {jwt: {audience: shop}}}"),
			[]string{"@{audience@ functions[0].bindings.route.auth.jwt.issuer: required: the issuer's URL, as in the tokens' iss claim"}},
		{"jwt issuer not a URL", binding("route: {context: /a, auth: {jwt: {issuer: example.com}}}"),
			[]string{`@example.com@ functions[0].bindings.route.auth.jwt.issuer: "example.com" is not an http(s) URL`}},
		{"jwks not http", binding("route: {context: /a, auth: {jwt: {issuer: 'https://id', jwks: 'ftp://id/k'}}}"),
			[]string{`@'ftp@ functions[0].bindings.route.auth.jwt.jwks: "ftp://id/k" is not an http(s) URL`}},
		{"scope with space", binding("route: {context: /a, auth: {apiKey: true, scopes: [ok, 'a b']}}"),
			[]string{`@'a b'@ functions[0].bindings.route.auth.scopes[1]: "a b" is not a scope: scopes are single words`}},
		{"auth unknown field", binding("route: {context: /a, auth: {apiKey: true, oidc: {}}}"),
			[]string{"@oidc@ functions[0].bindings.route.auth.oidc: unknown field; the fields here are apiKey, jwt, scopes"}},
	})
}

func TestRulesTimer(t *testing.T) {
	runRules(t, []ruleCase{
		{"every", binding("timer: '@every 10s'"), nil},
		{"five fields", binding("timer: '0 9 * * MON-FRI'"), nil},
		{"six fields", binding("timer: '*/10 * * * * *'"), nil},
		{"descriptor", binding("timer: '@hourly'"), nil},
		{"mapping", binding("timer: {schedule: '@daily', timezone: Europe/Berlin, stream: ticks, catchUp: none}"), nil},
		{"not cron", binding("timer: bogus"),
			[]string{`@bogus@ functions[0].bindings.timer.schedule: "bogus" is not a schedule: expected 5 to 6 fields, found 1: [bogus]; use cron with optional seconds ("*/10 * * * * *", "0 9 * * MON-FRI") or @every 10s, @hourly, @daily`}},
		{"out of range", binding("timer: '0 61 * * * *'"),
			[]string{`@'0 61@ functions[0].bindings.timer.schedule: "0 61 * * * *" is not a schedule: end of range (61) above maximum (59): 61; use cron with optional seconds ("*/10 * * * * *", "0 9 * * MON-FRI") or @every 10s, @hourly, @daily`}},
		{"never fires", binding("timer: '0 0 30 2 *'"),
			[]string{`@'0 0 30@ functions[0].bindings.timer.schedule: "0 0 30 2 *" never fires`}},
		{"every too often", binding("timer: '@every 500ms'"),
			[]string{`t.yaml:4:36 functions[0].bindings.timer.schedule: "@every 500ms": @every needs whole seconds, at least 1s`}},
		{"every fraction", binding("timer: '@every 1.5s'"),
			[]string{`t.yaml:4:36 functions[0].bindings.timer.schedule: "@every 1.5s": @every needs whole seconds, at least 1s`}},
		{"zone in schedule", binding("timer: 'CRON_TZ=Europe/Berlin 0 9 * * *'"),
			[]string{"@'CRON@ functions[0].bindings.timer.schedule: put the time zone in timezone, not in the schedule"}},
		{"schedule missing", binding("timer: {timezone: UTC}"),
			[]string{`@{timezone@ functions[0].bindings.timer.schedule: required: when to fire, like "0 * * * *" or @every 10s`}},
		{"schedule empty", binding("timer: {schedule: ''}"),
			[]string{"@''@ functions[0].bindings.timer.schedule: schedule is empty"}},
		{"timezone local", binding("timer: {schedule: '@daily', timezone: Local}"),
			[]string{"@Local@ functions[0].bindings.timer.timezone: Local depends on the machine the timer runs on: name a zone like Europe/Berlin, or UTC"}},
		{"timezone unknown", binding("timer: {schedule: '@daily', timezone: Mars/Olympus}"),
			[]string{`@Mars@ functions[0].bindings.timer.timezone: "Mars/Olympus" is not a time zone: use an IANA name like Europe/Berlin, or UTC`}},
		{"catch up", binding("timer: {schedule: '@daily', catchUp: every}"),
			[]string{`@every}@ functions[0].bindings.timer.catchUp: "every" is not a catch-up policy: use none, one or all`}},
		{"stream internal", binding("timer: {schedule: '@daily', stream: _butter.timers}"),
			[]string{`@_butter@ functions[0].bindings.timer.stream: "_butter.timers" is an internal stream: functions may read it but not write to it`}},
		{"timer a list", binding("timer: ['@daily']"),
			[]string{"t.yaml:4:36 functions[0].bindings.timer: expected a mapping or a schedule, got a list"}},
	})
}

func TestRulesStreams(t *testing.T) {
	runRules(t, []ruleCase{
		{"names", binding("streams: [a, {name: b}, _butter.events]"), nil},
		{"a string", binding("streams: a"),
			[]string{"@a}@ functions[0].bindings.streams: expected a list, got a string"}},
		{"null item", binding("streams: [a, ~]"),
			[]string{"@~@ functions[0].bindings.streams[1]: expected a mapping or a stream name, got null"}},
		{"list item", binding("streams: [[a]]"),
			[]string{"@[a]@ functions[0].bindings.streams[0]: expected a mapping or a stream name, got a list"}},
		{"name missing", binding("streams: [{offset: first}]"),
			[]string{"@{offset@ functions[0].bindings.streams[0].name: required: the stream to consume"}},
		{"name invalid", binding("streams: [Orders]"),
			[]string{`@Orders@ functions[0].bindings.streams[0].name: "Orders": ` + streamRule}},
		{"name too long", binding("streams: [" + strings.Repeat("s", 202) + "]"),
			[]string{fmt.Sprintf(`@sss@ functions[0].bindings.streams[0].name: %q: %s`, strings.Repeat("s", 202), streamRule)}},
		{"bound twice", binding("streams: [a, {name: a, offset: first}]"),
			[]string{`@a, offset@ functions[0].bindings.streams[1].name: "a" is bound twice`}},
		{"filter", binding("streams: [{name: a, filter: {type: x, subject: y, partitionkey: z}}]"), nil},
		{"filter attribute", binding("streams: [{name: a, filter: {Type: x, data_x: y}}]"), []string{
			`@Type@ functions[0].bindings.streams[0].filter.Type: "Type" is not a CloudEvents attribute name: use 1-20 characters of a-z and 0-9`,
			`@data_x@ functions[0].bindings.streams[0].filter.data_x: "data_x" is not a CloudEvents attribute name: use 1-20 characters of a-z and 0-9`,
		}},
		{"filter value", binding("streams: [{name: a, filter: {type: [x]}}]"),
			[]string{"@[x]@ functions[0].bindings.streams[0].filter.type: expected a string, got a list"}},
		{"filter a string", binding("streams: [{name: a, filter: x}]"),
			[]string{"@x}@ functions[0].bindings.streams[0].filter: expected a mapping, got a string"}},
		{"out invalid", binding("streams: [a], out: Out"),
			[]string{`@Out@ functions[0].bindings.out: "Out": ` + streamRule}},
		{"out empty", binding("streams: [a], out: ''"),
			[]string{`@''@ functions[0].bindings.out: "": ` + streamRule}},
		{"out internal", binding("streams: [a], out: _butter.events"),
			[]string{`@_butter@ functions[0].bindings.out: "_butter.events" is an internal stream: functions may read it but not write to it`}},
		{"out a list", binding("streams: [a], out: [b]"),
			[]string{"@[b]@ functions[0].bindings.out: expected a string, got a list"}},
		{"emits", binding("streams: [a], emits: [b, c.d, e_f]"), nil},
		{"emits a string", binding("streams: [a], emits: b"),
			[]string{"@b}@ functions[0].bindings.emits: expected a list, got a string"}},
		{"emits twice", binding("streams: [a], emits: [b, b]"),
			[]string{`@b]@ functions[0].bindings.emits[1]: "b" is listed twice`}},
		{"emits internal", binding("streams: [a], emits: [_butter.logs]"),
			[]string{`@_butter@ functions[0].bindings.emits[0]: "_butter.logs" is an internal stream: functions may read it but not write to it`}},
		{"emits item", binding("streams: [a], emits: [{b: 1}, ~]"), []string{
			"@{b: 1}@ functions[0].bindings.emits[0]: expected a string, got a mapping",
			"@~@ functions[0].bindings.emits[1]: expected a string, got null",
		}},
	})
}

func TestRulesOffset(t *testing.T) {
	offset := func(o string) string { return binding("streams: [{name: a, offset: " + o + "}]") }
	const bad = `is not first, latest, a number, an RFC 3339 time or a partition map`
	runRules(t, []ruleCase{
		{"first", offset("first"), nil},
		{"latest", offset("latest"), nil},
		{"zero", offset("0"), nil},
		{"number", offset("42"), nil},
		{"quoted number", offset("'42'"), nil},
		{"time", offset("2024-06-01T00:00:00Z"), nil},
		{"time with zone", offset("'2024-06-01T08:00:00.5+02:00'"), nil},
		{"partitions", offset(`{"0": 42, "1": 17}`), nil},
		{"partitions unquoted", offset(`{0: 42, 3: 0}`), nil},
		{"typo", offset("frist"), []string{`@frist@ functions[0].bindings.streams[0].offset: "frist" ` + bad}},
		{"negative", offset("-1"),
			[]string{"@-1@ functions[0].bindings.streams[0].offset: offset -1 is negative: use first, latest or a number from 0"}},
		{"negative quoted", offset("'-5'"),
			[]string{"@'-5'@ functions[0].bindings.streams[0].offset: offset -5 is negative: use first, latest or a number from 0"}},
		{"fraction", offset("1.5"), []string{`@1.5@ functions[0].bindings.streams[0].offset: "1.5" ` + bad}},
		{"bad month", offset("2024-13-01T00:00:00Z"),
			[]string{`@2024@ functions[0].bindings.streams[0].offset: "2024-13-01T00:00:00Z" ` + bad}},
		{"date only", offset("2024-06-01"),
			[]string{`@2024@ functions[0].bindings.streams[0].offset: "2024-06-01" ` + bad}},
		{"too large", offset("99999999999999999999"),
			[]string{`@9999@ functions[0].bindings.streams[0].offset: "99999999999999999999" ` + bad}},
		{"a list", offset("[1]"),
			[]string{"@[1]@ functions[0].bindings.streams[0].offset: expected first, latest, a number, an RFC 3339 time or a partition map, got a list"}},
		{"partition not a number", offset("{x: 1}"),
			[]string{`@x: 1@ functions[0].bindings.streams[0].offset.x: "x" is not a partition number: use 0, 1, 2, ...`}},
		{"partition negative", offset(`{"-1": 1}`),
			[]string{`@"-1"@ functions[0].bindings.streams[0].offset["-1"]: "-1" is not a partition number: use 0, 1, 2, ...`}},
		{"partition offset negative", offset(`{"0": -1}`),
			[]string{`@-1@ functions[0].bindings.streams[0].offset["0"]: offset -1 is negative: use a number from 0`}},
		{"partition offset a string", offset(`{"0": first}`),
			[]string{`@first@ functions[0].bindings.streams[0].offset["0"]: expected an integer, got a string`}},
		{"partition twice", offset(`{"0": 1, "00": 2}`),
			[]string{`@"00"@ functions[0].bindings.streams[0].offset["00"]: partition 0 is given twice`}},
		{"partitions empty", offset("{}"),
			[]string{"@{}@ functions[0].bindings.streams[0].offset: the partition map is empty: give at least one partition, or use first or latest"}},
	})
}

func TestRulesDelivery(t *testing.T) {
	delivery := func(d string) string { return with("delivery: {" + d + "}") }
	runRules(t, []ruleCase{
		{"valid", delivery("retries: 0, backoff: 1s, maxBackoff: 1m, timeout: 5m, deadLetter: dlq, ordering: none, guarantee: at-least-once, batch: 100"), nil},
		{"retries negative", delivery("retries: -1"),
			[]string{"@-1@ functions[0].delivery.retries: must not be negative"}},
		{"retries too many", delivery("retries: 10001"),
			[]string{"@10001@ functions[0].delivery.retries: must be at most 10000"}},
		{"retries a string", delivery("retries: '3'"),
			[]string{"@'3'@ functions[0].delivery.retries: expected an integer, got a string"}},
		{"retries tagged", delivery("retries: !!int x"),
			[]string{`@!!int@ functions[0].delivery.retries: expected an integer, got "x"`}},
		{"retries a fraction", delivery("retries: 1.5"),
			[]string{"@1.5@ functions[0].delivery.retries: expected an integer, got a number"}},
		{"retries huge", delivery("retries: 9999999999"),
			[]string{"@9999999999@ functions[0].delivery.retries: 9999999999 is out of range"}},
		{"backoff zero", delivery("backoff: 0s"),
			[]string{"@0s@ functions[0].delivery.backoff: must be more than 0"}},
		{"backoff negative", delivery("backoff: -1s"),
			[]string{"@-1s@ functions[0].delivery.backoff: -1s is negative"}},
		{"backoff above max", delivery("backoff: 10s, maxBackoff: 1s"),
			[]string{"@1s}@ functions[0].delivery.maxBackoff: 1s is less than backoff 10s"}},
		{"backoff above default max", delivery("backoff: 1m"),
			[]string{"@1m@ functions[0].delivery.backoff: 1m0s is more than maxBackoff, which defaults to 30s"}},
		{"max below default backoff", delivery("maxBackoff: 100ms"),
			[]string{"@100ms@ functions[0].delivery.maxBackoff: 100ms is less than backoff 200ms"}},
		{"timeout zero", delivery("timeout: 0s"),
			[]string{"@0s@ functions[0].delivery.timeout: must be more than 0"}},
		{"dead letter internal", delivery("deadLetter: _butter.events"),
			[]string{`@_butter@ functions[0].delivery.deadLetter: "_butter.events" is an internal stream: functions may read it but not write to it`}},
		{"dead letter invalid", delivery("deadLetter: 'dead letters'"),
			[]string{`@'dead@ functions[0].delivery.deadLetter: "dead letters": ` + streamRule}},
		{"ordering", delivery("ordering: random"),
			[]string{`@random@ functions[0].delivery.ordering: "random" is not an ordering: use partition, key or none`}},
		{"guarantee", delivery("guarantee: at-most-once"),
			[]string{`@at-most@ functions[0].delivery.guarantee: "at-most-once" is not a guarantee: use at-least-once or exactly-once`}},
		{"exactly once", delivery("guarantee: exactly-once"), nil},
		{"exactly once unordered", delivery("guarantee: exactly-once, ordering: none"),
			[]string{"@exactly@ functions[0].delivery.guarantee: exactly-once needs ordering: partition"}},
		{"ordering key", delivery("ordering: key"), nil},
		{"exactly once by key", delivery("guarantee: exactly-once, ordering: key"),
			[]string{"@exactly@ functions[0].delivery.guarantee: exactly-once needs ordering: partition"}},
		{"batch zero", delivery("batch: 0"),
			[]string{"@0}@ functions[0].delivery.batch: must be at least 1"}},
		{"batch too big", delivery("batch: 10001"),
			[]string{"@10001@ functions[0].delivery.batch: must be at most 10000"}},
		{"not a mapping", with("delivery: 5"),
			[]string{"@5}@ functions[0].delivery: expected a mapping, got an integer"}},
		{"unknown field", delivery("retry: 5"),
			[]string{`@retry@ functions[0].delivery.retry: unknown field (did you mean "retries"?)`}},
		{"case typo", delivery("maxbackoff: 5s"),
			[]string{`@maxbackoff@ functions[0].delivery.maxbackoff: unknown field (did you mean "maxBackoff"?)`}},
	})
}

func TestRulesScale(t *testing.T) {
	scale := func(s string) string { return with("scale: {" + s + "}") }
	runRules(t, []ruleCase{
		{"valid", scale("min: 2, max: 4, concurrency: 8"), nil},
		{"scale to zero", scale("min: 0"), nil},
		{"min above default max", scale("min: 20"), nil},
		{"min at the bound", scale("min: 64"), nil},
		{"min negative", scale("min: -1"),
			[]string{"@-1@ functions[0].scale.min: must not be negative (0 scales to zero when idle)"}},
		{"min above max", scale("min: 5, max: 2"),
			[]string{"@5@ functions[0].scale.min: 5 is more than max 2"}},
		{"min too many", scale("min: 1000"),
			[]string{"@1000@ functions[0].scale.min: must be at most 64"}},
		{"min one too many", scale("min: 65"),
			[]string{"@65@ functions[0].scale.min: must be at most 64"}},
		{"max zero", scale("max: 0"),
			[]string{"@0}@ functions[0].scale.max: must be at least 1 (use min: 0 to scale to zero)"}},
		{"max too many", scale("max: 65"),
			[]string{"@65@ functions[0].scale.max: must be at most 64"}},
		{"concurrency zero", scale("concurrency: 0"),
			[]string{"@0}@ functions[0].scale.concurrency: must be at least 1"}},
		{"concurrency too high", scale("concurrency: 10001"),
			[]string{"@10001@ functions[0].scale.concurrency: must be at most 10000"}},
		{"load targets", scale("min: 0, max: 4, lagPerReplica: 50, activationLag: 10, idleAfter: 30s"), nil},
		{"lagPerReplica zero", scale("lagPerReplica: 0"),
			[]string{"@0}@ functions[0].scale.lagPerReplica: must be at least 1"}},
		{"activationLag negative", scale("activationLag: -1"),
			[]string{"@-1@ functions[0].scale.activationLag: must not be negative (0: any lag wakes the function)"}},
		{"idleAfter too short", scale("idleAfter: 10ms"),
			[]string{"@10ms@ functions[0].scale.idleAfter: must be at least 1s"}},
		{"min a word", scale("min: one"),
			[]string{"@one@ functions[0].scale.min: expected an integer, got a string"}},
	})
}

func TestRulesLimits(t *testing.T) {
	limits := func(l string) string { return with("limits: {" + l + "}") }
	runRules(t, []ruleCase{
		{"valid", limits("memory: 512Mi, cpu: '0.5'"), nil},
		{"fractions", limits("memory: 1.5Gi, cpu: 0.25"), nil},
		{"decimal units", limits("memory: 500MB, cpu: 2"), nil},
		{"millicores", limits("cpu: 500m"), nil},
		{"memory garbage", limits("memory: lots"),
			[]string{`@lots@ functions[0].limits.memory: "lots" is not a size: write bytes, or a number with Ki, Mi, Gi, KB, MB or GB`}},
		{"memory zero", limits("memory: 0Mi"),
			[]string{"@0Mi@ functions[0].limits.memory: must be more than 0"}},
		{"memory negative", limits("memory: -1Gi"),
			[]string{`@-1Gi@ functions[0].limits.memory: "-1Gi" is not a size: write bytes, or a number with Ki, Mi, Gi, KB, MB or GB`}},
		{"cpu garbage", limits("cpu: fast"),
			[]string{`@fast@ functions[0].limits.cpu: "fast" is not a CPU quantity: write cores like 0.5 or 2, or millicores like 500m`}},
		{"cpu zero", limits("cpu: 0"),
			[]string{"@0}@ functions[0].limits.cpu: must be more than 0"}},
		{"unknown field", limits("disk: 1Gi"),
			[]string{"@disk@ functions[0].limits.disk: unknown field; the fields here are memory, cpu"}},
	})
}

func TestRulesStreamCount(t *testing.T) {
	// streams writes n bound streams s0..s<n-1> and an explicit dead
	// letter, so the descriptor names n+1 streams.
	streams := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "s%d", i)
		}
		return one("{fn: a.js:f, bindings: {streams: [" + b.String() + "]}, delivery: {deadLetter: dlq}}")
	}
	runRules(t, []ruleCase{
		{"at the limit", streams(MaxStreams - 1), nil},
		{"one over", streams(MaxStreams),
			[]string{"@dlq@ functions[0].delivery.deadLetter: is stream number 101 of this descriptor: at most 100, each is a topic the deployer creates; split the deployment"}},
		{"far over", streams(3000),
			[]string{"@s100,@ functions[0].bindings.streams[100].name: is stream number 101 of this descriptor: at most 100, each is a topic the deployer creates; split the deployment"}},
	})
}

func TestRulesIsolation(t *testing.T) {
	shared := func(platform, extra string) string {
		return "name: t\nplatform: " + platform + "\nisolation: shared\n" + extra
	}
	const envWhy = "a shared deployment runs in one process with the other shared deployments, which has one environment"
	const limitsWhy = "a shared deployment runs in one process with the other shared deployments, which has one cgroup: use isolation: process to set limits"
	runRules(t, []ruleCase{
		{"left out", "name: t\nplatform: go\nenv: {A: b}\n" + okFunctions, nil},
		{"process", "name: t\nplatform: exec\nisolation: process\nenv: {A: b}\nfunctions: [{fn: ./a.sh, bindings: {streams: [s]}, limits: {memory: 64Mi}}]\n", nil},
		{"shared node", shared("node", okFunctions), nil},
		{"shared python", shared("python", "functions: [{fn: app.py:handle, bindings: {streams: [s]}}]\n"), nil},
		{"shared with runtime docker", shared("node", "runtime: docker\n"+okFunctions), nil},
		{"shared, empty env", shared("node", "env: {}\n"+okFunctions), nil},
		{"shared, empty limits", shared("node", "functions: [{fn: a.js:f, bindings: {streams: [s]}, limits: {}}]\n"), nil},
		{"unknown", "name: t\nplatform: node\nisolation: thread\n" + okFunctions,
			[]string{`@thread@ isolation: "thread" is not an isolation: use process or shared, or leave it out for process`}},
		{"upper case", "name: t\nplatform: node\nisolation: Shared\n" + okFunctions,
			[]string{`@Shared@ isolation: "Shared" is not an isolation: use process or shared, or leave it out for process`}},
		{"a list", "name: t\nplatform: node\nisolation: [shared]\n" + okFunctions,
			[]string{"@[shared]@ isolation: expected a string, got a list"}},
		{"shared go", shared("go", "functions: [{fn: ./cmd/a, bindings: {streams: [s]}}]\n"),
			[]string{"@shared@ isolation: shared is for node and python, whose functions load into one host process; go functions run processes of their own: use isolation: process"}},
		{"shared exec", shared("exec", "functions: [{fn: ./a.sh, bindings: {streams: [s]}}]\n"),
			[]string{"@shared@ isolation: shared is for node and python, whose functions load into one host process; exec functions run processes of their own: use isolation: process"}},
		{"shared http", shared("http", "functions: [{fn: node server.js, bindings: {streams: [s]}}]\n"),
			[]string{"@shared@ isolation: shared is for node and python, whose functions load into one host process; http functions run processes of their own: use isolation: process"}},
		{"shared, unknown platform: one problem", shared("nodejs", okFunctions),
			[]string{`@nodejs@ platform: "nodejs" is not a platform: use node, python, go, exec, http or image`}},
		{"shared with env", shared("node", "env: {LOG_LEVEL: debug}\n"+okFunctions),
			[]string{"@{LOG@ env: " + envWhy + ": use isolation: process to set env"}},
		{"shared with secretEnv", shared("node", "secretEnv: {DB_PASSWORD: hunter2}\n"+okFunctions),
			[]string{"@{DB@ secretEnv: " + envWhy + ", readable by all of them: use isolation: process to set secretEnv"}},
		{"shared with limits", shared("node", "functions:\n  - {fn: a.js:f, bindings: {streams: [s]}}\n  - {fn: b.js:g, bindings: {streams: [s]}, limits: {memory: 64Mi, cpu: 500m}}\n"), []string{
			"@64Mi@ functions[1].limits.memory: " + limitsWhy,
			"@500m@ functions[1].limits.cpu: " + limitsWhy,
		}},
		{"shared with a bad limit: the shape first", shared("node", "functions: [{fn: a.js:f, bindings: {streams: [s]}, limits: {memory: [1]}}]\n"),
			[]string{"@[1]}@ functions[0].limits.memory: expected a string, got a list"}},
		{"shared with everything refused", shared("go", "env: {A: b}\nsecretEnv: {B: c}\nfunctions: [{fn: ./cmd/a, bindings: {streams: [s]}, limits: {cpu: 2}}]\n"), []string{
			"@shared@ isolation: shared is for node and python, whose functions load into one host process; go functions run processes of their own: use isolation: process",
			"@{A@ env: " + envWhy + ": use isolation: process to set env",
			"@{B@ secretEnv: " + envWhy + ", readable by all of them: use isolation: process to set secretEnv",
			"@2}@ functions[0].limits.cpu: " + limitsWhy,
		}},
	})
}
