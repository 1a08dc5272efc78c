from nnsight import TransformersModel, LanguageModel
print(TransformersModel.__name__)
with model.trace("Hello world") as tracer:
    out = model.lm_head.output.argmax(dim=-1).save()
print(out)
