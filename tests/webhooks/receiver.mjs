// A webhook receiver for medbook's API tests. Every delivery is verified with the Standard Webhooks
// reference library (npm `standardwebhooks`), as a real receiver would verify it.
//
//   PUT  /config/<name>    {"secret": "whsec_…", "mode": "ok" | "gone" | "down" | "fail-first", "failures": N,
//                           "delayMs": N, "failPatient": "<id>"}      how endpoint /hooks/<name> answers
//                           (failPatient: 500 for that patient's events, whatever the mode)
//   POST /hooks/<name>     a delivery: verified, recorded, answered as configured
//   GET  /received/<name>  every delivery so far, in arrival order
//
// It prints {"port": N} on its first line, and exits when its standard input closes (its test binary ended).
import http from "node:http";
import { Webhook } from "standardwebhooks";

const configs = new Map();
const received = new Map();
const attemptsById = new Map();

function body(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

const server = http.createServer(async (req, res) => {
  const [, kind, name] = req.url.split("?")[0].split("/");
  try {
    if (req.method === "PUT" && kind === "config") {
      configs.set(name, JSON.parse((await body(req)).toString()));
      res.writeHead(204).end();
      return;
    }
    if (req.method === "GET" && kind === "received") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(received.get(name) ?? []));
      return;
    }
    if (req.method === "POST" && kind === "hooks") {
      const raw = await body(req);
      const config = configs.get(name) ?? { mode: "ok" };
      let verified = false;
      let payload = null;
      let error = null;
      try {
        payload = new Webhook(config.secret).verify(raw, req.headers);
        verified = true;
      } catch (e) {
        error = String(e.message ?? e);
        try { payload = JSON.parse(raw.toString()); } catch { payload = null; }
      }
      const id = req.headers["webhook-id"];
      const key = `${name}/${id}`;
      const attempt = (attemptsById.get(key) ?? 0) + 1;
      attemptsById.set(key, attempt);
      let status = 200;
      if (!verified) status = 400;
      else if (config.mode === "gone") status = 410;
      else if (config.mode === "down") status = 503;
      else if (config.mode === "fail-first" && attempt <= (config.failures ?? 1)) status = 500;
      else if (config.failPatient && payload?.data?.patientId === config.failPatient) status = 500;
      if (config.delayMs) await new Promise((r) => setTimeout(r, config.delayMs));
      const list = received.get(name) ?? [];
      list.push({
        webhookId: id,
        timestamp: req.headers["webhook-timestamp"],
        verified,
        error,
        status,
        type: payload?.type ?? null,
        eventId: payload?.data?.id ?? null,
        patientId: payload?.data?.patientId ?? null,
        occurredAt: payload?.data?.occurredAt ?? null,
        keys: payload?.data ? Object.keys(payload.data).sort() : [],
        dataKeys: payload?.data?.data ? Object.keys(payload.data.data).sort() : [],
        receivedAt: Date.now(),
      });
      received.set(name, list);
      res.writeHead(status, { "content-type": "text/plain" }).end(String(status));
      return;
    }
    res.writeHead(404).end();
  } catch (e) {
    res.writeHead(500).end(String(e));
  }
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
