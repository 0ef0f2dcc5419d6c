/**
 * A child process whose stdout is read line by line. Tests wait on what a
 * process says (a 'ready' line, an access-log line), never on the clock.
 */
import * as os from 'os';
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';

export class Proc {
  readonly lines: string[] = [];
  stderr = '';
  exitCode: number | null = null;
  private readonly waiters: (() => void)[] = [];
  private readonly exited: Promise<number | null>;

  constructor(
    readonly label: string,
    readonly child: ChildProcess,
  ) {
    let partial = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      partial += d;
      const parts = partial.split('\n');
      partial = parts.pop()!;
      this.lines.push(...parts);
      this.notify();
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) =>
      child.on('close', (code, signal) => {
        // A process killed by a signal has exited too (the shell's 128 + signo), so waits end at once.
        this.exitCode = code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0);
        this.notify();
        resolve(code);
      }),
    );
  }

  static start(label: string, argv: string[], env?: NodeJS.ProcessEnv): Proc {
    return new Proc(label, spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env }));
  }

  /** Also appends everything the process prints (stdout and stderr) to a file, for people to tail. */
  tee(file: string): this {
    const out = fs.openSync(file, 'a');
    this.child.stdout!.on('data', (d: string) => fs.writeSync(out, d));
    this.child.stderr!.on('data', (d: string) => fs.writeSync(out, d));
    this.child.on('close', () => fs.closeSync(out));
    return this;
  }

  get pid(): number {
    return this.child.pid!;
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private readonly parsed: Record<string, unknown>[] = [];
  private parsedLines = 0;

  /**
   * JSON objects printed so far (non-JSON lines are skipped). Each line is
   * parsed once: tests call this in wait predicates, on every chunk of
   * output, and a chatty process prints tens of thousands of lines.
   */
  json(): Record<string, unknown>[] {
    for (; this.parsedLines < this.lines.length; this.parsedLines++) {
      try {
        this.parsed.push(JSON.parse(this.lines[this.parsedLines]));
      } catch {
        /* not JSON */
      }
    }
    return [...this.parsed];
  }

  /** Resolves with the first line (from the start) that matches; rejects on exit or deadline. */
  async waitForLine(match: (line: string) => boolean, timeoutMs = 15000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find(match);
      if (hit !== undefined) return hit;
      if (this.exitCode !== null) {
        throw new Error(`${this.label} exited (${this.exitCode}) before printing the expected line.\nstdout:\n${this.lines.join('\n')}\nstderr:\n${this.stderr}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.label}: no matching line within ${timeoutMs} ms.\nstdout:\n${this.lines.join('\n')}\nstderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async waitForJson(match: (o: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>> {
    const line = await this.waitForLine((l) => {
      try {
        return match(JSON.parse(l));
      } catch {
        return false;
      }
    }, timeoutMs);
    return JSON.parse(line);
  }

  /**
   * Polls probe until it holds, for readiness that shows outside the process
   * (a health endpoint, a listening socket, work seen through the API). Fails
   * at once if the process exits, or at the deadline, with its last output.
   */
  async readyWhen(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 60_000, periodMs = 100): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await probe())) {
      const why = this.exitCode !== null ? `exited (${this.exitCode}) before ${what}` : Date.now() > deadline ? `not ${what} within ${timeoutMs / 1000} s` : undefined;
      if (why) throw new Error(`${this.label} ${why}: ${this.stderr.slice(-2000)}${this.lines.slice(-5).join('\n')}`);
      await new Promise((r) => setTimeout(r, periodMs));
    }
  }

  /** Waits for the process to exit and returns its code. */
  wait(): Promise<number | null> {
    return this.exited;
  }

  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.exitCode === null) {
      try {
        process.kill(this.pid, signal);
      } catch {
        /* already gone */
      }
    }
    await this.exited;
  }
}

/**
 * Polls something asynchronous (the API, a log file, the agent) every 100 ms
 * until it yields a value; fails with a description after the deadline.
 */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls kernel or process state until cond holds; fails with a description after the deadline. */
export async function waitUntil(cond: () => boolean, what: string, timeoutMs = 5000, periodMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, periodMs));
  }
}
