// Server-Sent Events read from a fetch() body, so that requests can carry
// Authorization (EventSource cannot send headers). Parses the text/event-stream
// format: "event:", "data:" (joined by newlines), "id:", comments, blank-line dispatch.

/** Split an event stream's text into events; returns the unparsed tail. */
export function parseEvents(buffer, onEvent) {
  const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
  const tail = blocks.pop();
  for (const block of blocks) {
    let event = "message";
    const data = [];
    let id = null;
    for (const line of block.split(/\r\n|\n|\r/)) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
    if (data.length) onEvent({ event, data: data.join("\n"), id });
  }
  return tail;
}

/** Read a streaming Response until it ends, calling onEvent for each event. */
export async function readEventStream(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = parseEvents(buffer + value, onEvent);
  }
  parseEvents(buffer + "\n\n", onEvent);
}
