/**
 * Draw a machine as a Mermaid `stateDiagram-v2`, from the machine definition
 * itself rather than from a hand-kept picture, so the diagram in
 * machines/README.md cannot drift from the code (test/machine/diagram.test.ts
 * checks the committed copy).
 *
 * Pure: string in, string out; scripts/machines-diagram.ts does the file I/O.
 */
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

/**
 * Mermaid text for a flat machine (atomic and final states only).
 *
 * - `[*] --> <initial>` first, then each state's transitions, then
 *   `<final> --> [*]` for each final state.
 * - Ordering is the machine's definition order (states, then events within a
 *   state, then candidates within an event), which is deterministic and reads
 *   in lifecycle order rather than alphabetically.
 * - Labels are `event [guard]`. The unguarded fallback after guarded
 *   candidates for the same event is labelled `event [else]`, because a bare
 *   `event` would read as "always" next to its guarded siblings.
 * - Delayed transitions are labelled `after <delay>ms`, eventless ones
 *   `always`; a targetless transition is drawn as a self-loop.
 * - The output ends with a newline, ready to be written as a file.
 *
 * Throws on a nested machine or on a name Mermaid would misparse: those are
 * bugs in the caller, not states of the world.
 */
export function toMermaid(machine: AnyStateMachine): string {
  const root = machine.root;
  const states = Object.values(root.states) as AnyStateNode[];
  for (const node of states) {
    if (node.type !== 'atomic' && node.type !== 'final') {
      throw new Error(
        `toMermaid draws flat machines only; state '${node.key}' of machine '${root.id}' is ${node.type}`,
      );
    }
    safeId(node.key);
  }

  const lines = ['stateDiagram-v2'];
  const initial = root.initial.target[0];
  if (initial !== undefined) lines.push(`  [*] --> ${safeId(initial.key)}`);

  const drawn = new Set<string>(initial === undefined ? [] : [initial.key]);
  for (const node of states) {
    for (const [label, target] of edgesOf(node)) {
      lines.push(`  ${safeId(node.key)} --> ${safeId(target)} : ${safeLabel(label)}`);
      drawn.add(node.key);
      drawn.add(target);
    }
  }
  // A state with no edge in or out would otherwise be missing from the picture.
  for (const node of states) {
    if (!drawn.has(node.key) && node.type !== 'final') lines.push(`  ${node.key}`);
  }
  for (const node of states) {
    if (node.type === 'final') lines.push(`  ${node.key} --> [*]`);
  }
  return `${lines.join('\n')}\n`;
}

/** [label, target key] for each transition of one state node, in definition order. */
function edgesOf(node: AnyStateNode): Array<[string, string]> {
  const groups: Array<[string, AnyTransitionDefinition[]]> = [...node.transitions.entries()];
  // Eventless transitions are not in `.transitions`; xstate keeps them apart.
  if (node.always !== undefined && node.always.length > 0) groups.push(['', node.always]);

  const edges: Array<[string, string]> = [];
  for (const [, candidates] of groups) {
    let sawGuard = false;
    for (const t of candidates) {
      let label = eventLabel(t);
      if (t.guard !== undefined) {
        label += ` [${guardName(t.guard)}]`;
        sawGuard = true;
      } else if (sawGuard) {
        label += ' [else]';
      }
      const targets = t.target ?? [node];
      for (const target of targets) edges.push([label, target.key]);
    }
  }
  return edges;
}

function eventLabel(t: AnyTransitionDefinition): string {
  // Delayed transitions carry a generated event type (`xstate.after.<delay>.<id>`)
  // that means nothing to a reader; their definition keeps the delay itself.
  const delay = (t as { delay?: unknown }).delay;
  if (delay !== undefined) return typeof delay === 'number' ? `after ${delay}ms` : `after ${String(delay)}`;
  if (t.eventType === '') return 'always';
  return t.eventType;
}

/**
 * A readable name for a guard as xstate stores it: a string for a named guard,
 * `{ type, params }` for a parameterised one, a function for an inline guard or
 * for the `not`/`and`/`or` combinators (which keep their operands in `.guards`).
 */
function guardName(guard: unknown): string {
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const operands = (guard as { guards?: unknown }).guards;
    if (Array.isArray(operands)) {
      const names = operands.map(guardName);
      if (guard.name === 'not') return `!${names[0] ?? '?'}`;
      if (guard.name === 'and') return names.join(' && ');
      if (guard.name === 'or') return names.join(' || ');
    }
    return guard.name === '' ? 'inline guard' : guard.name;
  }
  if (typeof guard === 'object' && guard !== null && 'type' in guard) return String(guard.type);
  return 'guard';
}

// Mermaid's state ids stop at ':', whitespace, '-' and '{'.
function safeId(id: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(id)) {
    throw new Error(`toMermaid: state '${id}' is not a plain identifier and would not parse in Mermaid`);
  }
  return id;
}

// A transition label runs from ':' to the end of the line and may not contain
// another ':' or ';' (Mermaid ends the label there) or a '#' (a comment).
function safeLabel(label: string): string {
  if (/[:;#\n]/.test(label)) {
    throw new Error(`toMermaid: label '${label}' contains a character Mermaid cannot show in a transition`);
  }
  return label;
}

/** The markers around a generated diagram in a Markdown file. */
export function diagramMarkers(name: string): { start: string; end: string } {
  return { start: `<!-- diagram:${name}:start -->`, end: `<!-- diagram:${name}:end -->` };
}

/**
 * `doc` with the text between the markers for `name` replaced by `diagram` in
 * a ```mermaid fence. Throws if the markers are missing or out of order, so a
 * renamed heading cannot silently leave a stale picture behind.
 */
export function replaceDiagramBlock(doc: string, name: string, diagram: string): string {
  const { start, end } = diagramMarkers(name);
  const from = doc.indexOf(start);
  const to = doc.indexOf(end);
  if (from === -1 || to === -1 || to < from) {
    throw new Error(`missing or misordered markers ${start} ... ${end}`);
  }
  const block = `${start}\n\`\`\`mermaid\n${diagram.endsWith('\n') ? diagram : `${diagram}\n`}\`\`\`\n`;
  return doc.slice(0, from) + block + doc.slice(to);
}
