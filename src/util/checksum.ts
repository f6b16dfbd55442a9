/** RFC 1071: the ones' complement of the ones' complement sum of 16-bit words (an odd byte is padded with zero). */
export function internetChecksum(buf: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (buf.length % 2 === 1) sum += buf[buf.length - 1]! << 8;
  // Ones' complement addition: carries out of bit 15 wrap around into bit 0.
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}
