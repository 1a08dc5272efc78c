with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    outs = list().save()
    for step in tracer.iter[:3]:
        outs.append(model.generator.streamer.output)
    ids = model.generator.output.save()
print([o.tolist() for o in outs], ids[0, -3:].tolist())
with model.generate(["The Eiffel Tower is in the city of", "Hello"], max_new_tokens=2) as tracer:
    s = model.generator.streamer.output.save()
print(s.shape, s.tolist())
