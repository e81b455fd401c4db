"""What the box shows about itself locally: latest values, a small history, what is wrong."""
