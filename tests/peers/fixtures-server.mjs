// @octokit/fixtures-server run as its README's express middleware, with the
// scenarios bundled in @octokit/fixtures (recorded against api.github.com)
// plus Exhibit's own, in the same nock format, from the directory given as
// the first argument. Listens on a free port on 127.0.0.1 and prints
// "listening PORT" once ready.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

import express from "express";
import fixtureServerMiddleware from "@octokit/fixtures-server";
import defaults from "@octokit/fixtures-server/lib/defaults.js";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node fixtures-server.mjs SCENARIO_DIR");
  process.exit(2);
}
const ours = {};
for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
  ours[file.replace(/\.json$/, "")] = JSON.parse(readFileSync(join(dir, file), "utf8"));
}

const app = express();
const server = app.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  app.use(
    fixtureServerMiddleware({
      port,
      fixturesUrl: `http://127.0.0.1:${port}`,
      logLevel: process.env.FIXTURES_LOG_LEVEL || "error",
      ttl: 300000,
      fixtures: { ...defaults.fixtures, ...ours },
    }),
  );
  console.log(`listening ${port}`);
});
