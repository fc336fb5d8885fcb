// Validates Strimzi custom resources against Strimzi's own schemas, as shipped by the npm package
// @kubernetes-models/strimzi-kafka-operator (generated from Strimzi's CRDs; the package carries
// them as compiled JSON-schema validators, one per kind and API version).
//
//   node validate_strimzi.mjs PACKAGE_DIR < objects.json
//
// stdin: a JSON array of objects. stdout: a JSON array, one entry per object:
//   {"kind", "name", "apiVersion", "errors": [{"path", "message"}]}
// Exit status 0 when it could run (whatever it found), 2 when it could not.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const packageDir = process.argv[2];
if (!packageDir) {
  console.error("usage: node validate_strimzi.mjs PACKAGE_DIR < objects.json");
  process.exit(2);
}
const objects = JSON.parse(readFileSync(0, "utf8"));
const models = new Map();

async function model(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (!models.has(key)) {
    // kafka.strimzi.io/v1 + KafkaUser -> <package>/kafka.strimzi.io/v1/KafkaUser.js
    const file = join(packageDir, apiVersion, `${kind}.js`);
    const mod = await import(pathToFileURL(file).href);
    if (!mod[kind]) throw new Error(`${file} exports no ${kind}`);
    models.set(key, mod[kind]);
  }
  return models.get(key);
}

const results = [];
for (const obj of objects) {
  const entry = { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata?.name, errors: [] };
  let Model;
  try {
    Model = await model(obj.apiVersion, obj.kind);
  } catch (err) {
    entry.errors.push({ path: "", message: `no schema for ${obj.apiVersion} ${obj.kind}: ${err.message}` });
    results.push(entry);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (err) {
    const found = err.errors ?? [{ instancePath: "", message: String(err.message ?? err) }];
    for (const e of found) {
      const detail = e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : "";
      entry.errors.push({ path: e.instancePath ?? "", message: `${e.message}${detail}` });
    }
  }
  results.push(entry);
}
process.stdout.write(JSON.stringify(results));
