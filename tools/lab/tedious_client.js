// Lab client: tedious (node) logging in with NTLM and running one query.
// usage: node tedious_client.js HOST DOMAIN USER PASSWORD "SQL" [CA.pem]
// With CA.pem the connection uses TDS 8.0 "strict" (TLS first, ALPN tds/8.0, certificate checked
// against CA.pem).
// Environment: TEDIOUS_PORT (default 1433); TEDIOUS_ENCRYPT=1: TDS 7.x with full encryption
// (ENCRYPT_ON; any certificate is trusted); TEDIOUS_SQL_AUTH=1: SQL authentication (USER,
// PASSWORD) instead of NTLM.
// Prints the rows, or "Msg <number>: <text>" for each server error; exit code 0 on success.
'use strict';
const { Connection, Request } = require('tedious');

const fs = require('fs');

const [host, domain, userName, password, sql, ca] = process.argv.slice(2);
const options = {
  port: Number(process.env.TEDIOUS_PORT || 1433),
  encrypt: process.env.TEDIOUS_ENCRYPT === '1',
  trustServerCertificate: true,
  connectTimeout: 15000,
};
if (ca) {
  options.encrypt = 'strict';
  options.cryptoCredentialsDetails = { ca: [fs.readFileSync(ca)] };
}
const conn = new Connection({
  server: host,
  authentication:
    process.env.TEDIOUS_SQL_AUTH === '1'
      ? { type: 'default', options: { userName, password } }
      : { type: 'ntlm', options: { domain, userName, password } },
  options,
});
conn.on('errorMessage', (m) => console.log(`Msg ${m.number}: ${m.message}`));
conn.on('connect', (err) => {
  if (err) {
    console.log(`connect failed: ${err.message}`);
    process.exit(1);
  }
  const req = new Request(sql, (e) => {
    if (e) console.log(`query failed: ${e.message}`);
    conn.close();
    process.exitCode = e ? 1 : 0;
  });
  req.on('row', (cols) => console.log(cols.map((c) => c.value).join('\t')));
  conn.execSqlBatch(req);
});
conn.connect();
