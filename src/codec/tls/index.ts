export * from "./Alert.ts"
export * from "./ClientHello.ts"
export * from "./Decode.ts"
export * from "./Protocol.ts"
