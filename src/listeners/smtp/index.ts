// The smtp listener type: greets the client itself and routes by its EHLO domain or first recipient's domain.
import { type ListenerManifest, protocolListener } from "../manifest.ts"

export const smtpListener: ListenerManifest = {
  type: "smtp",
  label: "smtp",
  routeBy: ["ehlo", "rcpt"],
  start: protocolListener(() => import("./smtp.ts").then((m) => m.smtpProtocol))
}
