import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run, type RunOptions } from '../host/exec.js';
import { killProcess, processRef, type ResourceLedger } from '../host/ledger.js';

export const VSWITCH_SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';

export interface OvsDaemonsOptions {
  /** Run directory holding the database, sockets, pid and log files. */
  rundir: string;
  /** Network namespace path the daemons run in (so internal ports appear there). */
  netns?: string;
  /** Where the pidfiles are recorded for crash-safe cleanup. */
  ledger?: ResourceLedger;
}

type Daemon = 'ovsdb-server' | 'ovs-vswitchd';

/**
 * One isolated Open vSwitch: ovsdb-server + ovs-vswitchd with their own run directory, optionally
 * inside a network namespace. Used by the lab for each node and by tests.
 */
export class OvsDaemons {
  readonly rundir: string;
  readonly netns?: string;
  private readonly ledger?: ResourceLedger;

  constructor(opts: OvsDaemonsOptions) {
    this.rundir = opts.rundir;
    this.netns = opts.netns;
    this.ledger = opts.ledger;
  }

  get dbPath(): string {
    return join(this.rundir, 'conf.db');
  }
  get dbSocket(): string {
    return join(this.rundir, 'db.sock');
  }
  /** OVSDB remote in ovs-vsctl syntax. */
  get dbRemote(): string {
    return `unix:${this.dbSocket}`;
  }
  /** The OpenFlow management socket of a bridge, as ovs-ofctl's target. */
  bridgeMgmt(bridge: string): string {
    return `unix:${join(this.rundir, `${bridge}.mgmt`)}`;
  }
  pidfile(d: Daemon): string {
    return join(this.rundir, `${d}.pid`);
  }
  ctlSocket(d: Daemon): string {
    return join(this.rundir, `${d}.ctl`);
  }
  logFile(d: Daemon): string {
    return join(this.rundir, `${d}.log`);
  }

  /** Env making OVS tools find this instance's files instead of the system ones. */
  get env(): NodeJS.ProcessEnv {
    return { ...process.env, OVS_RUNDIR: this.rundir, OVS_DBDIR: this.rundir, OVS_LOGDIR: this.rundir, OVS_SYSCONFDIR: this.rundir };
  }

  pid(d: Daemon): number | undefined {
    try {
      const pid = Number.parseInt(readFileSync(this.pidfile(d), 'utf8').trim(), 10);
      return Number.isFinite(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  private runOpts(extra: RunOptions = {}): RunOptions {
    return { env: this.env, netns: this.netns, timeoutMs: 30_000, ...extra };
  }

  /** Creates the database (first time) and starts both daemons. */
  async start(): Promise<void> {
    await this.startDatabase();
    await this.startVswitchd();
  }

  /** Creates the database (first time) and starts only ovsdb-server, initialised. */
  async startDatabase(): Promise<void> {
    mkdirSync(this.rundir, { recursive: true });
    if (!existsSync(this.dbPath)) await run('ovsdb-tool', ['create', this.dbPath, VSWITCH_SCHEMA], { env: this.env });
    await this.startOvsdb();
    await this.vsctl(['--no-wait', 'init']);
  }

  async startOvsdb(): Promise<void> {
    await this.startDaemon('ovsdb-server', [this.dbPath, `--remote=punix:${this.dbSocket}`]);
  }

  async startVswitchd(): Promise<void> {
    await this.startDaemon('ovs-vswitchd', [this.dbRemote]);
  }

  /** Starts one daemon detached, with its pidfile recorded in the ledger first so a crash mid-start is reaped. */
  private async startDaemon(d: Daemon, args: string[]): Promise<void> {
    this.ledger?.pidfile(this.pidfile(d));
    await run(
      d,
      [
        ...args,
        `--pidfile=${this.pidfile(d)}`,
        `--log-file=${this.logFile(d)}`,
        `--unixctl=${this.ctlSocket(d)}`,
        '-vconsole:off',
        '--detach',
        '--no-chdir',
      ],
      this.runOpts(),
    );
  }

  /** Stops one daemon by its recorded pid (SIGTERM, then SIGKILL). `hard` sends SIGKILL at once. */
  async stopDaemon(d: Daemon, hard = false): Promise<void> {
    const pid = this.pid(d);
    if (pid === undefined) return;
    const ref = processRef(pid, d);
    await killProcess(ref, hard ? 0 : 3000);
    rmSync(this.pidfile(d), { force: true });
  }

  async restartOvsdb(): Promise<void> {
    await this.stopDaemon('ovsdb-server');
    await this.startOvsdb();
  }

  /**
   * Restarts ovs-vswitchd. With `flowRestoreWait`, sets other_config:flow-restore-wait first, as Seine's OVS
   * container does on a restart, so the new daemon waits for the agent to reinstall flows.
   */
  async restartVswitchd(opts: { flowRestoreWait?: boolean } = {}): Promise<void> {
    await this.stopDaemon('ovs-vswitchd');
    if (opts.flowRestoreWait) await this.vsctl(['--no-wait', 'set', 'Open_vSwitch', '.', 'other_config:flow-restore-wait=true']);
    await this.startVswitchd();
  }

  /** Stops both daemons; the run directory stays unless `removeState`. */
  async stop(removeState = false): Promise<void> {
    await this.stopDaemon('ovs-vswitchd');
    await this.stopDaemon('ovsdb-server');
    if (removeState) rmSync(this.rundir, { recursive: true, force: true });
  }

  /** ovs-vsctl against this instance's database. */
  async vsctl(args: string[]): Promise<string> {
    const { stdout } = await run('ovs-vsctl', [`--db=${this.dbRemote}`, '--timeout=20', ...args], this.runOpts({ netns: undefined }));
    return stdout;
  }

  /** ovs-appctl to one daemon's control socket. */
  async appctl(d: Daemon, args: string[]): Promise<string> {
    const { stdout } = await run('ovs-appctl', ['-t', this.ctlSocket(d), ...args], this.runOpts({ netns: undefined }));
    return stdout;
  }
}
