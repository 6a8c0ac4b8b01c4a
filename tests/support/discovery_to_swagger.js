// Converts a Google API discovery document to Swagger 2.0 with
// google-discovery-to-swagger (pinned in tests/peers), for Prism.
//
//   node discovery_to_swagger.js DISCOVERY.json OUT.json
'use strict';
const fs = require('fs');
const path = require('path');
const converter = require(path.join(__dirname, '../peers/node_modules/google-discovery-to-swagger'));

const discovery = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const swagger = converter.convert(discovery);
// The converter leaves out `produces`, without which Prism answers with an
// empty body. A discovery document states its format in the `alt`
// parameter, whose default `json` means application/json responses.
const alt = (discovery.parameters && discovery.parameters.alt) || {};
if (!swagger.produces && alt.default === 'json') {
  swagger.produces = ['application/json'];
}
fs.writeFileSync(process.argv[3], JSON.stringify(swagger));
