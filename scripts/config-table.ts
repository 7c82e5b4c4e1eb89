/** Prints the README's configuration table from the config schema itself. */
import { configDocs } from '../src/config/index.ts';

const rows = configDocs().map((r) => `| \`${r.name}\` | ${r.default === '(unset)' ? '_unset_' : `\`${r.default}\``} | ${r.description} |`);
process.stdout.write(['| Variable | Default | Meaning |', '|---|---|---|', ...rows].join('\n') + '\n');
