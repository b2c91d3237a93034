// Container health check for images without a shell or curl (distroless): GET
// $ATTEST_HEALTH_URL (default http://127.0.0.1:8080/healthz), exit 0 on HTTP 200, else 1.
// When pointed at an HTTPS listener, the certificate (which names the public host, not
// 127.0.0.1) is not verified: the check asks only "is this process answering", sends nothing.
/* global process, URL */
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';

const url = new URL(process.env.ATTEST_HEALTH_URL ?? 'http://127.0.0.1:8080/healthz');
const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
const req = request(url, { method: 'GET', timeout: 4000, rejectUnauthorized: false }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', () => process.exit(1));
req.end();
