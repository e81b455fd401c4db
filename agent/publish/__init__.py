"""Getting measurements off the box: payload builders, the MQTT session, the forwarder."""
