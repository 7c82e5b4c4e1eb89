/**
 * `scalar signing-key create FILE` and `scalar signing-key show FILE`: the
 * coordinator's command-signing key (docs/security.md). `create` writes a
 * fresh cluster nkey seed (mode 0600, never over an existing file); both
 * print its public key on stdout, the value agents list in
 * SCALAR_COORDINATOR_KEYS.
 */
import { createSeedFile, loadSigner, SigningKeyError } from '../wire/signing.ts';

async function printing(what: () => Promise<string>): Promise<void> {
  try {
    process.stdout.write((await what()) + '\n');
  } catch (err) {
    if (!(err instanceof SigningKeyError)) throw err;
    process.stderr.write(`scalar signing-key: ${err.message}\n`);
    process.exit(1);
  }
}

export function runSigningKeyCreate(file: string): Promise<void> {
  return printing(async () => {
    const { publicKey } = await createSeedFile(file);
    process.stderr.write(`wrote a new signing key to ${file} (mode 0600); its public key:\n`);
    return publicKey;
  });
}

export function runSigningKeyShow(file: string): Promise<void> {
  return printing(async () => (await loadSigner(file, 1, 'FILE')).publicKey);
}
