/** A secondary network's new pod port, added to its bridge with its host end still down. */
export interface AdmittedPort {
  bridge: string;
  ofport: number;
  /** The port's external_ids (pod identity, network, interface). */
  externalIds: Readonly<Record<string, string>>;
}

export interface PortGate {
  /** Whether the gate has anything to do for new ports now (no: they go up at once, as without it). */
  holds(): boolean;
  open(port: AdmittedPort): Promise<void>;
}

/**
 * What must be in place before a secondary network's new pod port passes traffic (its policy): features register
 * gates, the secondary datapath opens each of them, in turn, between adding the port and bringing its host end up.
 * A gate that fails fails the attachment.
 */
export class PortAdmission {
  private readonly gates = new Set<PortGate>();

  register(gate: PortGate): () => void {
    this.gates.add(gate);
    return () => this.gates.delete(gate);
  }

  /** Whether a new port must wait for its gates (otherwise it goes up at once). */
  get gated(): boolean {
    for (const gate of this.gates) if (gate.holds()) return true;
    return false;
  }

  async admit(port: AdmittedPort): Promise<void> {
    for (const gate of [...this.gates]) await gate.open(port);
  }
}
