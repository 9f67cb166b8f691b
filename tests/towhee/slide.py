# ruff: noqa: E501  (the slide and notebook code are kept as written)
"""The talk slide's pipeline, as the acceptance scripts run it (see test_slide.py)."""

SLIDE = '''
import pandas as pd
import cv2
from towhee import pipe, ops, DataCollection

def read_image(image_ids):
    df = pd.read_csv('reverse_image_search.csv')
    id_img = df.set_index('id')['path'].to_dict()
    imgs = []
    decode = ops.image_decode.cv2('rgb')
    for image_id in image_ids:
        path = id_img[image_id]
        imgs.append(decode(path))
    return imgs

p4 = (
    pipe.input('text')
    .map('text', 'vec', ops.image_text_embedding.clip(model_name='clip_vit_base_patch16', modality='text'))
    .map('vec', 'vec', lambda x: x / np.linalg.norm(x))
    .map('vec', 'result', ops.ann_search.milvus_client(host='127.0.0.1', port='19530', collection_name='text_image_search', limit=5))
    .map('result', 'image_ids', lambda x: [item[0] for item in x])
    .map('image_ids', 'images', read_image)
    .output('text', 'images')
)
DataCollection(p4("A white dog")).show()
'''

# The text_image_search notebook: a pymilvus collection, then its insert pipeline over the CSV.
NOTEBOOK_INSERT = '''
import csv
import numpy as np
from pymilvus import connections, FieldSchema, CollectionSchema, DataType, Collection, utility
from towhee import pipe, ops

def create_milvus_collection(collection_name, dim):
    connections.connect(host='127.0.0.1', port='19530')
    if utility.has_collection(collection_name):
        utility.drop_collection(collection_name)
    fields = [
        FieldSchema(name='id', dtype=DataType.INT64, descrition='ids', is_primary=True, auto_id=False),
        FieldSchema(name='embedding', dtype=DataType.FLOAT_VECTOR, descrition='embedding vectors', dim=dim)
    ]
    schema = CollectionSchema(fields=fields, description='text image search')
    collection = Collection(name=collection_name, schema=schema)
    index_params = {'metric_type': 'L2', 'index_type': "IVF_FLAT", 'params': {"nlist": 512}}
    collection.create_index(field_name="embedding", index_params=index_params)
    return collection

collection = create_milvus_collection('text_image_search', 512)

def read_csv(csv_path, encoding='utf-8-sig'):
    with open(csv_path, 'r', encoding=encoding) as f:
        data = csv.DictReader(f)
        for line in data:
            yield int(line['id']), line['path']

p3 = (
    pipe.input('csv_file')
    .flat_map('csv_file', ('id', 'path'), read_csv)
    .map('path', 'img', ops.image_decode.cv2('rgb'))
    .map('img', 'vec', ops.image_text_embedding.clip(model_name='clip_vit_base_patch16', modality='image'))
    .map('vec', 'vec', lambda x: x / np.linalg.norm(x))
    .map(('id', 'vec'), (), ops.ann_insert.milvus_client(host='127.0.0.1', port='19530', collection_name='text_image_search'))
    .output()
)
ret = p3('reverse_image_search.csv')
collection.load()
print('Total number of inserted data is {}.'.format(collection.num_entities))
'''


def as_mmrag(code: str, *, port: int | None = None, lite_db: str | None = None) -> str:
    """The code with only towhee's import line changed (and the server address substituted)."""
    code = code.replace("from towhee import", "from pipelines import")
    if lite_db is not None:
        code = code.replace("host='127.0.0.1', port='19530'", f"uri={lite_db!r}")
    elif port is not None:
        code = code.replace("port='19530'", f"port='{port}'")
    return code
