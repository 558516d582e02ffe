/**
 * TLS material: the configured certificate and key, or a self-signed certificate for the
 * hostname, made once at first start and kept in `<data>/tls/` until real files are configured.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext, TLSSocket, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { Socket } from 'node:net';
import { generate } from 'selfsigned';

export interface TlsFiles {
  cert: string;
  key: string;
  selfSigned: boolean;
}

export async function ensureTlsFiles(dataDir: string, hostname: string, configured: { cert: string | null; key: string | null }): Promise<TlsFiles> {
  if (configured.cert && configured.key) return { cert: configured.cert, key: configured.key, selfSigned: false };
  if (configured.cert || configured.key) {
    throw new Error('the config names only one of tls.cert and tls.key; give both, or neither to use a self-signed certificate');
  }
  const dir = join(dataDir, 'tls');
  const cert = join(dir, 'self-signed-cert.pem');
  const key = join(dir, 'self-signed-key.pem');
  if (existsSync(cert) && existsSync(key)) return { cert, key, selfSigned: true };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const notAfter = new Date();
  notAfter.setFullYear(notAfter.getFullYear() + 10);
  const pems = await generate([{ name: 'commonName', value: hostname }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: notAfter,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: hostname }] },
    ],
  });
  writeFileSync(`${key}.tmp`, pems.private, { mode: 0o600 });
  writeFileSync(`${cert}.tmp`, pems.cert, { mode: 0o644 });
  renameSync(`${key}.tmp`, key);
  renameSync(`${cert}.tmp`, cert);
  return { cert, key, selfSigned: true };
}

/** The certificate and key, both as options (for TLS servers) and as a context (for STARTTLS). */
export interface TlsMaterial {
  options: SecureContextOptions;
  context: SecureContext;
}

export function loadTlsMaterial(files: TlsFiles): TlsMaterial {
  const options: SecureContextOptions = { cert: readFileSync(files.cert), key: readFileSync(files.key), minVersion: 'TLSv1.2' };
  return { options, context: createSecureContext(options) };
}

/**
 * Upgrades an accepted plain socket to TLS (STARTTLS, STLS). The caller must already have
 * discarded any bytes it buffered from the plain socket: what a client pipelined after the
 * STARTTLS command is never executed.
 */
export function upgradeServerSocket(socket: Socket, context: SecureContext, timeoutMs = 30_000): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = new TLSSocket(socket, { isServer: true, secureContext: context });
    const timer = setTimeout(() => {
      cleanup();
      secure.destroy();
      reject(new Error('TLS handshake timed out'));
    }, timeoutMs);
    const onSecure = (): void => {
      cleanup();
      resolve(secure);
    };
    const onError = (err: Error): void => {
      cleanup();
      secure.destroy();
      reject(err);
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      secure.off('secure', onSecure);
      secure.off('error', onError);
    };
    secure.once('secure', onSecure);
    secure.once('error', onError);
  });
}

export function describeTls(socket: TLSSocket): { version: string; cipher: string } {
  const cipher = socket.getCipher();
  return { version: socket.getProtocol() ?? 'TLS', cipher: cipher?.standardName ?? cipher?.name ?? 'unknown' };
}
