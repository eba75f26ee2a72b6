// Swagger 2.0 -> OpenAPI 3.0 (swagger2openapi) -> OpenAPI 3.1 (@scalar/openapi-upgrader).
// Usage: node tools/openapi/convert.mjs openapi/swagger.json openapi/openapi.json
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { upgrade } from '@scalar/openapi-upgrader';

const require = createRequire(import.meta.url);
const swagger2openapi = require('swagger2openapi');

const [source, target] = process.argv.slice(2);
if (!source || !target) {
  console.error('usage: node convert.mjs <swagger.json> <openapi.json>');
  process.exit(2);
}
const swagger = JSON.parse(readFileSync(source, 'utf8'));
const { openapi } = await swagger2openapi.convertObj(swagger, { patch: false, warnOnly: false, direct: false });
const upgraded = upgrade(openapi, '3.1');

function sorted(value) {
  if (Array.isArray(value)) return value.map(sorted);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted(value[k])]));
  }
  return value;
}
writeFileSync(target, JSON.stringify(sorted(upgraded), null, 2) + '\n');
console.log(`wrote ${target} (OpenAPI ${upgraded.openapi})`);
