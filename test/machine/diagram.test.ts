import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { createMachine, not, setup } from 'xstate';
import { JOB_STATUSES, TERMINAL_STATUSES, jobMachine } from '../../machines/job.machine.ts';
import { NODE_STATES, nodeMachine } from '../../machines/node.machine.ts';
import { diagramMarkers, replaceDiagramBlock, toMermaid } from '../../machines/mermaid.ts';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

describe('toMermaid(jobMachine)', () => {
  const diagram = toMermaid(jobMachine);
  const lines = diagram.trimEnd().split('\n').map((l) => l.trim());

  it('is a stateDiagram-v2 that starts at pending', () => {
    expect(lines[0]).toBe('stateDiagram-v2');
    expect(lines[1]).toBe('[*] --> pending');
  });

  it('draws every state', () => {
    for (const status of JOB_STATUSES) expect(diagram).toMatch(new RegExp(`\\b${status}\\b`));
  });

  it('draws exactly the machine transitions, labelled event [guard]', () => {
    const edges = lines.filter((l) => l.includes(' : '));
    expect(edges).toEqual([
      'pending --> queued : admit',
      'pending --> failed : fail',
      'pending --> cancelled : cancel',
      'queued --> scheduled : place',
      'queued --> queued : diagnose',
      'queued --> failed : fail',
      'queued --> cancelled : cancel',
      'scheduled --> running : start',
      'scheduled --> queued : exit [beingPreempted]',
      'scheduled --> completed : exit [exitedCleanly]',
      'scheduled --> failed : exit [else]',
      'scheduled --> queued : fail [beingPreempted]',
      'scheduled --> failed : fail [else]',
      'scheduled --> queued : requeue [beingPreempted]',
      'scheduled --> queued : requeue [canRetry]',
      'scheduled --> failed : requeue [else]',
      'scheduled --> scheduled : preempt [notBeingPreempted]',
      'scheduled --> failed : timeout',
      'scheduled --> scheduled : member_failed [noMemberFailure]',
      'scheduled --> cancelled : cancel',
      'running --> queued : exit [beingPreempted]',
      'running --> completed : exit [exitedCleanly]',
      'running --> failed : exit [else]',
      'running --> queued : fail [beingPreempted]',
      'running --> failed : fail [else]',
      'running --> queued : requeue [beingPreempted]',
      'running --> queued : requeue [canRetry]',
      'running --> failed : requeue [else]',
      'running --> running : preempt [notBeingPreempted]',
      'running --> failed : timeout',
      'running --> running : member_failed [noMemberFailure]',
      'running --> cancelled : cancel',
    ]);
  });

  it('ends each terminal status and nothing else', () => {
    const ends = lines.filter((l) => l.endsWith('--> [*]')).map((l) => l.split(' ')[0]);
    expect(ends.sort()).toEqual([...TERMINAL_STATUSES].sort());
  });

  it('is deterministic', () => {
    expect(toMermaid(jobMachine)).toBe(diagram);
  });
});

describe('committed diagrams match the machine (run `npm run machines:diagram` if this fails)', () => {
  it('machines/diagrams/job.mmd', () => {
    expect(read('machines/diagrams/job.mmd')).toBe(toMermaid(jobMachine));
  });

  it('the job block in machines/README.md', () => {
    const readme = read('machines/README.md');
    expect(replaceDiagramBlock(readme, 'job', toMermaid(jobMachine))).toBe(readme);
  });

  it('machines/diagrams/node.mmd', () => {
    expect(read('machines/diagrams/node.mmd')).toBe(toMermaid(nodeMachine));
  });

  it('the node block in machines/README.md', () => {
    const readme = read('machines/README.md');
    expect(replaceDiagramBlock(readme, 'node', toMermaid(nodeMachine))).toBe(readme);
  });
});

describe('toMermaid(nodeMachine)', () => {
  const diagram = toMermaid(nodeMachine);
  const lines = diagram.trimEnd().split('\n').map((l) => l.trim());

  it('starts at registering, draws every state, and ends none (lost is not final)', () => {
    expect(lines[1]).toBe('[*] --> registering');
    for (const state of NODE_STATES) expect(diagram).toMatch(new RegExp(`\\b${state}\\b`));
    expect(lines.filter((l) => l.endsWith('--> [*]'))).toEqual([]);
  });

  it('draws the way back from lost and the stay-in-place updates as self-loops', () => {
    expect(lines).toContain('lost --> ready : registered [else]');
    expect(lines).toContain('lost --> draining : registered [drainPending]');
    expect(lines).toContain('ready --> ready : heartbeat');
    expect(lines).toContain('ready --> lost : tick [missedTooMany]');
  });
});

describe('toMermaid on other flat machines', () => {
  it('draws not() guards, delays, eventless and targetless transitions', () => {
    const machine = setup({
      types: { events: {} as { type: 'beat' } | { type: 'poke' } },
      guards: { healthy: () => true },
    }).createMachine({
      id: 'probe',
      initial: 'up',
      states: {
        up: {
          on: { beat: {}, poke: { guard: not('healthy'), target: 'down' } },
          after: { 30000: 'down' },
        },
        down: { always: { guard: 'healthy', target: 'up' } },
      },
    });
    expect(toMermaid(machine)).toBe(
      [
        'stateDiagram-v2',
        '  [*] --> up',
        '  up --> up : beat',
        '  up --> down : poke [!healthy]',
        '  up --> down : after 30000ms',
        '  down --> up : always [healthy]',
        '',
      ].join('\n'),
    );
  });

  it('still shows a state with no transitions', () => {
    const machine = createMachine({ initial: 'a', states: { a: {}, b: {} } });
    expect(toMermaid(machine)).toContain('\n  b\n');
  });

  it('refuses nested machines rather than drawing them wrong', () => {
    const machine = createMachine({ id: 'n', initial: 'a', states: { a: { initial: 'x', states: { x: {} } } } });
    expect(() => toMermaid(machine)).toThrow(/flat machines only/);
  });
});

describe('replaceDiagramBlock', () => {
  const { start, end } = diagramMarkers('job');

  it('replaces only the text between the markers, in a mermaid fence', () => {
    const doc = `intro\n${start}\nold\n${end}\noutro\n`;
    expect(replaceDiagramBlock(doc, 'job', 'stateDiagram-v2\n')).toBe(
      `intro\n${start}\n\`\`\`mermaid\nstateDiagram-v2\n\`\`\`\n${end}\noutro\n`,
    );
  });

  it('throws when the markers are missing', () => {
    expect(() => replaceDiagramBlock('no markers', 'job', 'x\n')).toThrow(/markers/);
  });
});
