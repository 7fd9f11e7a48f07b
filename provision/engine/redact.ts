// Every line pullvault prints passes through one Redactor, so a secret registered once
// (an access key, a passphrase) can never appear in output, whatever code printed it.

export class Redactor {
  private readonly secrets = new Set<string>();

  /** Registers a secret; very short values are refused, they would mask ordinary words. */
  add(secret: string | undefined | null): void {
    if (!secret) return;
    const s = secret.trim();
    if (s.length < 6) throw new Error('refusing to register a secret shorter than 6 characters for masking');
    this.secrets.add(s);
  }

  mask(text: string): string {
    let out = text;
    // longest first, so a secret containing another is masked whole
    for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('****');
    return out;
  }
}
