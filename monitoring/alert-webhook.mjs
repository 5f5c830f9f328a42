// A minimal Alertmanager webhook receiver: prints every alert of every notification as one JSON line on
// stdout. docker-compose.yml runs it as `alert-webhook` (see `docker compose logs alert-webhook`), and
// test/monitoring-e2e.test.ts uses it to see alerts arrive through a real Alertmanager.
// Environment: ALERT_WEBHOOK_HOST (default 0.0.0.0), ALERT_WEBHOOK_PORT (default 9095; 0 picks a free port).
import http from 'node:http';

const host = process.env.ALERT_WEBHOOK_HOST ?? '0.0.0.0';
const port = Number(process.env.ALERT_WEBHOOK_PORT ?? 9095);

const server = http.createServer((req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(req.url === '/health' ? 200 : 405).end();
    return;
  }
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    try {
      const notification = JSON.parse(body);
      for (const alert of notification.alerts ?? []) {
        const line = {
          receiver: notification.receiver,
          status: alert.status,
          alertname: alert.labels?.alertname,
          labels: alert.labels,
          annotations: alert.annotations,
          startsAt: alert.startsAt,
        };
        process.stdout.write(`${JSON.stringify(line)}\n`);
      }
      res.writeHead(200).end();
    } catch (err) {
      process.stderr.write(`alert-webhook: bad notification: ${err}\n`);
      res.writeHead(400).end();
    }
  });
});

server.listen(port, host, () => {
  const address = server.address();
  process.stderr.write(`alert-webhook listening on ${host}:${typeof address === 'object' && address ? address.port : port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
