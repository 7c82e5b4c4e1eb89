/**
 * NATS over TLS with user/password authorization, on a nats-server of the
 * test's own: the CA, the server's certificate (for 127.0.0.1) and a client
 * certificate are made here with openssl. What docs/security.md ("TLS")
 * tells an operator to set up works as written, and what is missing fails
 * at connect, with the error a component would print.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findNatsServer, freePort, spawnNatsServer, type LocalNats } from '../../src/cli/nats-server.ts';
import { BusAuthError, BusUnavailableError, busOptions, connectBus, type BusConfig } from '../../src/wire/connection.ts';

const log = pino({ level: 'silent' });
const hasOpenssl = ['/usr/bin/openssl', '/usr/local/bin/openssl'].some((p) => existsSync(p));
const dir = mkdtempSync(path.join(tmpdir(), 'scalar-nats-tls-'));
const f = (name: string) => path.join(dir, name);
let server: LocalNats | undefined;
let url = '';

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
function makeCertificates(): void {
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=scalar-test-ca', '-keyout', 'ca-key.pem', '-out', 'ca.pem');
  for (const [name, ext] of [
    ['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    writeFileSync(f(`${name}.ext`), ext + '\n');
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=scalar-test-${name}`, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
  }
}

const cfg = (over: Partial<BusConfig>): BusConfig => ({
  NATS_URL: url,
  SCALAR_NATS_PREFIX: 'tlstest',
  SCALAR_LOG_RETENTION_HOURS: 1,
  SCALAR_LOG_MAX_MB: 8,
  NATS_USER: 'scalar',
  NATS_PASSWORD: 'correct horse battery staple',
  NATS_TLS_CA: f('ca.pem'),
  NATS_TLS_CERT: f('client.pem'),
  NATS_TLS_KEY: f('client-key.pem'),
  ...over,
});
const connect = (over: Partial<BusConfig>) => connectBus({ ...busOptions(cfg(over), 'tls-test', 'coordinator'), connectTimeoutMs: 3000 }, log);

describe.skipIf(!findNatsServer() || !hasOpenssl)('NATS over TLS, with user and password', () => {
  beforeAll(async () => {
    makeCertificates();
    const port = await freePort();
    writeFileSync(
      f('server.conf'),
      `listen: "127.0.0.1:${port}"
jetstream { store_dir: "${f('store')}" }
tls { cert_file: "${f('server.pem')}", key_file: "${f('server-key.pem')}", ca_file: "${f('ca.pem')}", verify: true }
authorization { users = [ { user: "scalar", password: "correct horse battery staple" } ] }
`,
    );
    server = await spawnNatsServer(findNatsServer()!, ['-c', f('server.conf')], { host: '127.0.0.1', port, logFile: f('nats.log') });
    url = `tls://127.0.0.1:${port}`;
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('connects with the CA, a client certificate and the password, and can use JetStream', async () => {
    const bus = await connect({});
    expect(bus.secured).toBe(true);
    expect((await bus.jsm.streams.info(bus.t.streams.JOBS)).config.name).toBe('TLSTEST_JOBS');
    for (const s of Object.values(bus.t.streams)) await bus.jsm.streams.delete(s);
    await bus.close();
  });

  it('a wrong password is refused, naming the variables to check', async () => {
    const err = await connect({ NATS_PASSWORD: 'wrong' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(BusAuthError);
    expect((err as Error).message).toMatch(/refused the coordinator credentials .*NATS_USER\/NATS_PASSWORD/);
  });

  it('without the CA the server certificate is not trusted, and nothing connects', async () => {
    const err = await connect({ NATS_TLS_CA: undefined }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(BusUnavailableError);
  });

  it('without a client certificate a server that verifies clients refuses the connection', async () => {
    const err = await connect({ NATS_TLS_CERT: undefined, NATS_TLS_KEY: undefined }).catch((e: Error) => e);
    // The server drops the handshake; the client gives up after its connect timeout.
    expect(err).toBeInstanceOf(BusUnavailableError);
    expect((err as Error).message).toMatch(/^cannot reach NATS at tls:\/\/127\.0\.0\.1:\d+: .*\(if the server verifies clients, set NATS_TLS_CERT and NATS_TLS_KEY\)$/);
  });

  it('a certificate without its key fails at start, before connecting', async () => {
    const err = await connect({ NATS_TLS_KEY: undefined }).catch((e: Error) => e);
    expect((err as Error).message).toBe('NATS_TLS_CERT and NATS_TLS_KEY go together: set both for a client certificate, or neither');
  });
});
